"""A saved TAMER checkpoint reloads identically: Auto classes, remote code without tamer_hf, offline Hub cache."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor

import tamer_hf
from tamer_hf import TamerModel, TamerProcessor
from tamer_hf.testing_utils import BLOCK_TAMER_HF, make_hub_cache, tiny_model_and_processor

REPORTS = ["sinus rhythm. normal ecg.", "atrial fibrillation. st depression in lateral leads."]


def reference_outputs(model, processor, ecgs):
    batch = processor(ecg=ecgs, text=REPORTS, sampling_rate=500)
    with torch.no_grad():
        output = model(**batch, return_loss=True)
        return {
            "input_values": batch["input_values"].numpy(),
            "input_ids": batch["input_ids"].numpy(),
            "ecg_embeds": output.ecg_embeds.numpy(),
            "text_embeds": output.text_embeds.numpy(),
            "loss": output.loss.numpy(),
            "spectrogram": model.spectrogram(batch["input_values"]).numpy(),
        }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tamer")
    model, processor = tiny_model_and_processor(seed=7)
    with torch.no_grad():  # make every weight differ from its initial value, so reloading must really load them
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        for name, buffer in model.named_buffers():
            if "running_var" in name:
                buffer.fill_(1.7)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    ecgs = np.random.default_rng(7).normal(size=(2, 12, 5000)).cumsum(axis=-1) * 0.01
    return folder, ecgs, reference_outputs(model, processor, ecgs)


def test_folder_holds_safetensors_auto_map_and_the_remote_code(saved):
    folder, _, _ = saved
    names = sorted(path.name for path in folder.iterdir())
    assert "model.safetensors" in names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    for file in ["configuration_tamer.py", "modeling_tamer.py", "feature_extraction_tamer.py", "processing_tamer.py",
                 "ecg_wfdb.py"]:
        assert file in names
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "tamer"
    assert config["auto_map"] == {"AutoConfig": "configuration_tamer.TamerConfig", "AutoModel": "modeling_tamer.TamerModel"}
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_tamer.TamerProcessor"
    for file in names:
        if file.endswith(".py"):
            assert not re.search(r"^\s*(import|from)\s+tamer_hf", (folder / file).read_text(), re.M), file


def test_import_registers_the_four_auto_classes(saved):
    folder, _, _ = saved
    assert type(AutoConfig.from_pretrained(folder)) is tamer_hf.TamerConfig
    assert type(AutoFeatureExtractor.from_pretrained(folder)) is tamer_hf.TamerFeatureExtractor
    assert type(AutoProcessor.from_pretrained(folder)) is TamerProcessor
    assert type(AutoModel.from_pretrained(folder)) is TamerModel


def test_auto_classes_reload_gives_identical_outputs_and_correct_buffers(saved):
    folder, ecgs, expected = saved
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    torch.testing.assert_close(model.stft_window, torch.hann_window(model.config.stft_win_length), rtol=0, atol=0)
    got = reference_outputs(model, processor, ecgs)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


CHILD = BLOCK_TAMER_HF + textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    try:
        import tamer_hf
        sys.exit("tamer_hf was importable")
    except ImportError:
        pass
    from transformers import AutoModel, AutoProcessor

    ecgs = np.load(sys.argv[1])
    reports = json.loads(sys.argv[2])
    results = {}
    for name, source in [("folder", sys.argv[3]), ("hub", "org/tamer-ecg")]:
        model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
        assert "tamer_hf" not in type(model).__module__
        window_ok = bool(torch.equal(model.stft_window, torch.hann_window(model.config.stft_win_length)))
        batch = processor(ecg=ecgs, text=reports, sampling_rate=500)
        with torch.no_grad():
            output = model(**batch, return_loss=True)
        np.savez(f"{name}.npz", input_values=batch["input_values"].numpy(), input_ids=batch["input_ids"].numpy(),
                 ecg_embeds=output.ecg_embeds.numpy(), text_embeds=output.text_embeds.numpy(),
                 loss=output.loss.numpy(), spectrogram=model.spectrogram(batch["input_values"]).numpy())
        results[name] = {"module": type(model).__module__, "window_ok": window_ok}
    print(json.dumps(results))
    """
)


def test_remote_code_without_tamer_hf_and_offline_hub_id_give_identical_outputs(saved, tmp_path):
    folder, ecgs, expected = saved
    np.save(tmp_path / "ecgs.npy", ecgs)
    (tmp_path / "child.py").write_text(CHILD)
    make_hub_cache(tmp_path / "hf_home", folder)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-I", "child.py", str(tmp_path / "ecgs.npy"), json.dumps(REPORTS), str(folder)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    for name in ("folder", "hub"):
        assert results[name]["window_ok"], name
        assert results[name]["module"].startswith("transformers_modules"), results[name]
        got = np.load(tmp_path / f"{name}.npz")
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name}: {key}")

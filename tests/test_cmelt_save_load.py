"""A saved C-MELT checkpoint reloads identically: Auto classes after `import tamer_hf` (in this process and in a fresh
one), and remote code with `trust_remote_code=True` in a process where tamer_hf cannot be imported (folder and offline
Hub cache)."""

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

import tamer_hf  # noqa: F401 (registers the families with the Auto classes)
from tamer_hf.modeling.configuration_cmelt import CmeltConfig
from tamer_hf.modeling.feature_extraction_tamer import TamerFeatureExtractor
from tamer_hf.modeling.modeling_cmelt import CmeltModel
from tamer_hf.modeling.processing_cmelt import CmeltProcessor
from tamer_hf.testing_utils import BLOCK_TAMER_HF, make_hub_cache, tiny_cmelt_model_and_processor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTS = ["sinus rhythm. normal ecg.", "atrial fibrillation. st depression in lateral leads."]

# Python run here and in child processes: the embeddings and the (fixed-mask) losses of a loaded checkpoint.
OUTPUTS = textwrap.dedent(
    """
    def reference_outputs(model, processor, ecgs, reports):
        import torch
        batch = processor(ecg=ecgs, text=reports, sampling_rate=500)
        labels = batch["input_ids"].clone()
        labels[:, 1::2] = -100
        with torch.no_grad():
            output = model(**batch, mlm_input_ids=batch["input_ids"], mlm_labels=labels,
                           is_aligned=torch.tensor([1, 0]), mem_noise=torch.linspace(0, 1, 2 * 312).reshape(2, 312),
                           return_loss=True)
            return {
                "input_values": batch["input_values"].numpy(),
                "input_ids": batch["input_ids"].numpy(),
                "ecg_features": model.get_ecg_features(input_values=batch["input_values"]).numpy(),
                "text_features": model.get_text_features(input_ids=batch["input_ids"],
                                                         attention_mask=batch["attention_mask"]).numpy(),
                "loss": output.loss.numpy(),
                "loss_mem": output.loss_mem.numpy(),
                "loss_mlm": output.loss_mlm.numpy(),
            }
    """
)
namespace = {}
exec(OUTPUTS, namespace)
reference_outputs = namespace["reference_outputs"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cmelt")
    model, processor = tiny_cmelt_model_and_processor(seed=7, texts=REPORTS)
    with torch.no_grad():  # make every weight differ from its initial value, so reloading must really load them
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    ecgs = np.random.default_rng(7).normal(size=(2, 12, 5000)).cumsum(axis=-1) * 0.01
    return folder, ecgs, reference_outputs(model, processor, ecgs, REPORTS)


def test_folder_holds_safetensors_auto_map_and_only_shared_and_cmelt_code(saved):
    folder, _, _ = saved
    names = sorted(path.name for path in folder.iterdir())
    assert "model.safetensors" in names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    code = {name for name in names if name.endswith(".py")}
    assert code == {"configuration_cmelt.py", "modeling_cmelt.py", "processing_cmelt.py", "feature_extraction_tamer.py",
                    "ecg_layers.py", "ecg_losses.py", "ecg_masking.py", "ecg_signal.py", "ecg_classification.py",
                    "pipeline_zero_shot_ecg.py", "configuration_ecg.py", "ecg_validation.py", "ecg_model_inputs.py",
                    "ecg_saving.py", "ecg_wfdb.py"}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "cmelt" and config["text_config"]["model_type"] == "t5"
    assert config["auto_map"] == {"AutoConfig": "configuration_cmelt.CmeltConfig",
                                  "AutoModel": "modeling_cmelt.CmeltModel"}
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_cmelt.CmeltProcessor"
    for file in code:
        assert not re.search(r"^\s*(import|from)\s+tamer_hf", (folder / file).read_text(), re.M), file


def test_import_tamer_hf_registers_the_auto_classes(saved):
    folder, _, _ = saved
    assert type(AutoConfig.from_pretrained(folder)) is CmeltConfig
    feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
    assert type(feature_extractor) is TamerFeatureExtractor and feature_extractor.normalization == "none"
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor) is CmeltProcessor and processor.tokenizer.mask_token == "<extra_id_0>"
    assert type(AutoModel.from_pretrained(folder)) is CmeltModel


def test_auto_classes_reload_gives_identical_outputs(saved):
    folder, ecgs, expected = saved
    model = AutoModel.from_pretrained(folder).eval()
    got = reference_outputs(model, AutoProcessor.from_pretrained(folder), ecgs, REPORTS)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


CHILD = BLOCK_TAMER_HF + OUTPUTS + textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor

    mode, ecgs, reports = sys.argv[1], np.load(sys.argv[2]), json.loads(sys.argv[3])
    if mode == "tamer_hf":
        sys.meta_path.pop(0)  # unblock: the installed library registers the Auto classes
        import tamer_hf
        sources, options = [("folder", sys.argv[4])], {}
    else:
        try:
            import tamer_hf
            sys.exit("tamer_hf was importable")
        except ImportError:
            pass
        sources, options = [("folder", sys.argv[4]), ("hub", "org/cmelt-ecg")], {"trust_remote_code": True}
    modules = {}
    for name, source in sources:
        model = AutoModel.from_pretrained(source, **options).eval()
        processor = AutoProcessor.from_pretrained(source, **options)
        np.savez(f"{mode}-{name}.npz", **reference_outputs(model, processor, ecgs, reports))
        modules[name] = type(model).__module__
    print(json.dumps(modules))
    """
)


@pytest.mark.parametrize("mode", ["tamer_hf", "remote_code"])
def test_a_fresh_process_gives_identical_outputs(saved, tmp_path, mode):
    folder, ecgs, expected = saved
    np.save(tmp_path / "ecgs.npy", ecgs)
    (tmp_path / "child.py").write_text(CHILD)
    make_hub_cache(tmp_path / "hf_home", folder, repo_id="org/cmelt-ecg")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO}
    if mode == "remote_code":
        env.pop("PYTHONPATH")
    completed = subprocess.run(
        [sys.executable, "-I" if mode == "remote_code" else "-u", "child.py", mode, str(tmp_path / "ecgs.npy"),
         json.dumps(REPORTS), str(folder)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    modules = json.loads(completed.stdout.strip().splitlines()[-1])
    for name, module in modules.items():
        if mode == "remote_code":
            assert module.startswith("transformers_modules"), module
        else:
            assert module.startswith("tamer_hf."), module
        got = np.load(tmp_path / f"{mode}-{name}.npz")
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{mode} {name}: {key}")

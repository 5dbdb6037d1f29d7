"""A saved CG-DMER checkpoint reloads identically: Auto classes after `import tamer_hf` (in this process and in a fresh
one), the zero-shot pipeline, and remote code with `trust_remote_code=True` in a process where tamer_hf cannot be
imported (folder and offline Hub cache)."""

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
from tamer_hf.modeling.configuration_cgdmer import CgdmerConfig
from tamer_hf.modeling.feature_extraction_tamer import TamerFeatureExtractor
from tamer_hf.modeling.modeling_cgdmer import CgdmerModel
from tamer_hf.modeling.processing_cgdmer import CgdmerProcessor
from tamer_hf.pipelines import save_pretrained_with_pipeline
from tamer_hf.testing_utils import BLOCK_TAMER_HF, make_hub_cache, tiny_cgdmer_model_and_processor

REPORTS = ["sinus rhythm. normal ecg.", "atrial fibrillation. st depression in lateral leads."]
LABELS = ["atrial fibrillation", "sinus rhythm", "left bundle branch block"]

# Python run here and in child processes: the embeddings, the (fixed-mask) losses and the pipeline's raw scores.
OUTPUTS = textwrap.dedent(
    """
    def reference_outputs(model, processor, ecgs, reports, classifier):
        import torch
        batch = processor(ecg=ecgs, text=reports, sampling_rate=500)
        labels = batch["input_ids"].clone()
        labels[:, 1::2] = -100
        ecg_mask = torch.zeros(2, model.config.num_patches)
        ecg_mask[:, ::4] = 1.0  # any mask with the same count per row
        ecg_mask[:, 1::4] = 1.0
        ecg_mask[:, 2::4] = 1.0
        with torch.no_grad():
            output = model(**batch, mlm_input_ids=batch["input_ids"], mlm_labels=labels, ecg_mask=ecg_mask,
                           return_loss=True)
            scores = classifier(list(ecgs), sampling_rate=500, candidate_labels=LABELS, function_to_apply="none")
            return {
                "input_values": batch["input_values"].numpy(),
                "input_ids": batch["input_ids"].numpy(),
                "ecg_features": model.get_ecg_features(input_values=batch["input_values"]).numpy(),
                "text_features": model.get_text_features(input_ids=batch["input_ids"],
                                                         attention_mask=batch["attention_mask"]).numpy(),
                "loss": output.loss.numpy(),
                **{f"loss_{term}": output[f"loss_{term}"].numpy()
                   for term in ("siglip", "ecg_reconstruction", "mlm", "disentanglement")},
                "pipeline": np.array([[dict((r["label"], r["score"]) for r in result)[label] for label in LABELS]
                                      for result in scores]),
            }
    """
)
namespace = {"LABELS": LABELS, "np": np}
exec(OUTPUTS, namespace)
reference_outputs = namespace["reference_outputs"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cgdmer")
    model, processor = tiny_cgdmer_model_and_processor(seed=7, texts=REPORTS)
    with torch.no_grad():  # make every weight and statistic differ from its initial value, so reloading must load them
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        for norm in (model.ecg_shared_norm, model.text_shared_norm):
            norm.running_mean.add_(0.1)
            norm.running_var.mul_(1.5)
    save_pretrained_with_pipeline(model, processor, folder)  # what examples/pretrain.py saves
    ecgs = np.random.default_rng(7).normal(size=(2, 12, 5000)).cumsum(axis=-1) * 0.01
    classifier = tamer_hf.pipeline("zero-shot-ecg-classification", model=model, tokenizer=processor.tokenizer,
                                   feature_extractor=processor.feature_extractor)
    return folder, ecgs, reference_outputs(model, processor, ecgs, REPORTS, classifier)


def test_folder_holds_safetensors_auto_map_and_only_shared_and_cgdmer_code(saved):
    folder, _, _ = saved
    names = sorted(path.name for path in folder.iterdir())
    assert "model.safetensors" in names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    code = {name for name in names if name.endswith(".py")}
    pipeline_files = {name for name in code if name.startswith("pipeline_")}
    assert len(pipeline_files) == 1
    assert code - pipeline_files == {"configuration_cgdmer.py", "modeling_cgdmer.py", "processing_cgdmer.py",
                                     "feature_extraction_tamer.py", "ecg_layers.py", "ecg_losses.py",
                                     "ecg_masking.py", "ecg_signal.py", "ecg_classification.py",
                                     "configuration_ecg.py", "ecg_validation.py", "ecg_model_inputs.py",
                                     "ecg_saving.py", "ecg_wfdb.py"}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "cgdmer" and config["text_config"]["model_type"] == "bert"
    assert config["auto_map"] == {"AutoConfig": "configuration_cgdmer.CgdmerConfig",
                                  "AutoModel": "modeling_cgdmer.CgdmerModel"}
    assert "zero-shot-ecg-classification" in config["custom_pipelines"]
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_cgdmer.CgdmerProcessor"
    for file in code:
        assert not re.search(r"^\s*(import|from)\s+tamer_hf", (folder / file).read_text(), re.M), file


def test_import_tamer_hf_registers_the_auto_classes(saved):
    folder, _, _ = saved
    assert type(AutoConfig.from_pretrained(folder)) is CgdmerConfig
    assert type(AutoFeatureExtractor.from_pretrained(folder)) is TamerFeatureExtractor
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor) is CgdmerProcessor and processor.tokenizer.mask_token == "[MASK]"
    assert type(AutoModel.from_pretrained(folder)) is CgdmerModel
    assert type(AutoModel.from_config(CgdmerConfig(**tamer_hf.families.get_family("cgdmer").presets["cgdmer-tiny"]))) \
        is CgdmerModel


CHILD = BLOCK_TAMER_HF + OUTPUTS + textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor

    mode, ecgs, reports, LABELS = sys.argv[1], np.load(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[5])
    if mode == "tamer_hf":
        sys.meta_path.pop(0)  # unblock: the installed library registers the Auto classes and the pipeline task
        import tamer_hf
        sources, options = [("folder", sys.argv[4])], {}
        make_pipeline = lambda source: tamer_hf.pipeline("zero-shot-ecg-classification", model=source)
    else:
        try:
            import tamer_hf
            sys.exit("tamer_hf was importable")
        except ImportError:
            pass
        from transformers import pipeline
        sources, options = [("folder", sys.argv[4]), ("hub", "org/cgdmer-ecg")], {"trust_remote_code": True}
        make_pipeline = lambda source: pipeline(model=source, trust_remote_code=True)
    modules = {}
    for name, source in sources:
        model = AutoModel.from_pretrained(source, **options).eval()
        processor = AutoProcessor.from_pretrained(source, **options)
        classifier = make_pipeline(source)
        np.savez(f"{mode}-{name}.npz", **reference_outputs(model, processor, ecgs, reports, classifier))
        modules[name] = [type(model).__module__, type(classifier).__module__, classifier.task]
    print(json.dumps(modules))
    """
)


@pytest.mark.parametrize("mode", ["tamer_hf", "remote_code"])
def test_a_fresh_process_gives_identical_outputs(saved, tmp_path, mode):
    folder, ecgs, expected = saved
    np.save(tmp_path / "ecgs.npy", ecgs)
    (tmp_path / "child.py").write_text(CHILD)
    make_hub_cache(tmp_path / "hf_home", folder, repo_id="org/cgdmer-ecg")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": repo}
    if mode == "remote_code":
        env.pop("PYTHONPATH")
    completed = subprocess.run(
        [sys.executable, "-I" if mode == "remote_code" else "-u", "child.py", mode, str(tmp_path / "ecgs.npy"),
         json.dumps(REPORTS), str(folder), json.dumps(LABELS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    modules = json.loads(completed.stdout.strip().splitlines()[-1])
    for name, (model_module, pipeline_module, task) in modules.items():
        assert task == "zero-shot-ecg-classification"
        if mode == "remote_code":
            assert model_module.startswith("transformers_modules")
            assert pipeline_module.startswith("transformers_modules")
        else:
            assert model_module.startswith("tamer_hf.") and pipeline_module.startswith("tamer_hf."), model_module
        got = np.load(tmp_path / f"{mode}-{name}.npz")
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{mode} {name}: {key}")

"""Issue 13: any folder written by plain `model.save_pretrained` + `processor.save_pretrained`, or by their
`push_to_hub`, serves the zero-shot pipeline where tamer_hf cannot be imported, with and without the task name, with
the same scores as the installed library."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import transformers

import tamer_hf
from tamer_hf.modeling.pipeline_zero_shot_ecg import TASK
from tamer_hf.testing_utils import (BLOCK_TAMER_HF, FakeHub, pipeline_outputs_without_tamer_hf, tiny_cgdmer_model_and_processor,
                                    tiny_cmelt_model_and_processor, tiny_model_and_processor)

LABELS = ["atrial fibrillation", "sinus rhythm", "left bundle branch block"]
CALLS = [{"sampling_rate": 500, "candidate_labels": LABELS},
         {"sampling_rate": 500, "candidate_labels": LABELS, "multi_label": True},
         {"sampling_rate": 500, "candidate_labels": LABELS, "function_to_apply": "none"}]
BUILDERS = {"tamer": tiny_model_and_processor, "cmelt": tiny_cmelt_model_and_processor,
            "cgdmer": tiny_cgdmer_model_and_processor}


def an_ecg():
    time = np.arange(5000) / 500
    rng = np.random.default_rng(3)
    return (np.sin(2 * np.pi * 1.1 * time) ** 21 * rng.uniform(0.5, 2, (12, 1))
            + 0.05 * rng.normal(size=(12, 5000))).astype(np.float32)


def scores(result) -> dict:
    return {entry["label"]: entry["score"] for entry in result}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def saved(request, tmp_path_factory):
    """One tiny model of each family, saved with plain save_pretrained and pushed (mocked Hub) as org/<family>-ecg."""
    model, processor = BUILDERS[request.param](texts=LABELS)
    folder = tmp_path_factory.mktemp(request.param) / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    hub = FakeHub(folder.parent / "hf_home")
    repo_id = f"org/{request.param}-ecg"
    with hub.patch_transformers():
        model.push_to_hub(repo_id)
        processor.push_to_hub(repo_id)
    return folder, repo_id, hub


def test_plain_save_pretrained_writes_custom_pipelines_and_copies_the_pipeline_file(saved):
    folder, _, hub = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        TASK: {"impl": "pipeline_zero_shot_ecg.ZeroShotECGClassificationPipeline", "pt": ["AutoModel"],
               "type": "multimodal"}}
    assert (folder / "pipeline_zero_shot_ecg.py").is_file()
    model_commit = hub.commits[0]
    assert {"config.json", "model.safetensors", "pipeline_zero_shot_ecg.py", "README.md"} <= set(model_commit)


def test_in_memory_config_of_the_installed_library_lists_no_custom_pipeline(saved):
    """So that `transformers.pipeline(TASK, model=folder)` after `import tamer_hf` needs no trust_remote_code."""
    folder, _, _ = saved
    assert transformers.AutoConfig.from_pretrained(folder).custom_pipelines == {}
    installed = transformers.pipeline(TASK, model=str(folder))
    assert type(installed) is tamer_hf.ZeroShotECGClassificationPipeline


def test_folder_and_pushed_repo_serve_the_pipeline_without_tamer_hf_with_the_installed_scores(saved, tmp_path):
    folder, repo_id, hub = saved
    installed = tamer_hf.pipeline(TASK, model=str(folder))
    ecg = an_ecg()
    expected = [scores(installed(ecg, **call)) for call in CALLS]

    outputs = pipeline_outputs_without_tamer_hf([folder, repo_id], ecg, CALLS, tmp_path, hf_home=hub.hf_home)

    for source, output in outputs.items():
        assert output["inferred_task"] == TASK, source
        assert all(module.startswith("transformers_modules") for module in output["modules"]), output["modules"]
        for kind in ("named", "inferred"):
            for call, got, want in zip(CALLS, output[kind], expected):
                assert scores(got) == pytest.approx(want, abs=1e-5), (source, kind, call)
    # real, distinct numbers (a tiny random model: two labels' cosines may agree to 4 decimals, as in one CI run)
    cosines = list(expected[2].values())
    assert len(set(cosines)) == len(LABELS) and max(cosines) - min(cosines) > 1e-4, cosines


def test_a_classification_head_folder_lists_no_zero_shot_pipeline(tmp_path):
    """A fine-tuned head has no report encoder: its folder must not advertise the zero-shot task."""
    from tamer_hf.modeling.modeling_tamer import TamerForECGClassification
    from tamer_hf.testing_utils import tiny_config

    head = TamerForECGClassification(tiny_config(num_labels=2))
    head.save_pretrained(tmp_path / "head")
    assert "custom_pipelines" not in json.loads((tmp_path / "head" / "config.json").read_text())
    assert (tmp_path / "head" / "pipeline_zero_shot_ecg.py").is_file()  # imported by the config file
    # the remote-code copy of the config, where tamer_hf is absent, lists nothing either
    child = BLOCK_TAMER_HF + textwrap.dedent("""
        import json
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)
        print(json.dumps([type(config).__module__, config.custom_pipelines]))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-I", "-c", child, str(tmp_path / "head")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    module, listed = json.loads(done.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules") and listed == {}

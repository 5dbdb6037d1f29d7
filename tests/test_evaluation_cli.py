"""examples/zero_shot_eval.py end to end on synthetic data with a tiny model, checked against sklearn on scores
computed independently through the pipeline."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from datasets_scripts import label_names, synthetic
from tamer_hf import evaluation
from tamer_hf.pipelines import TASK, pipeline
from tamer_hf.testing_utils import tiny_model_and_processor

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "zero_shot_eval.py"


def load_script():
    spec = importlib.util.spec_from_file_location("zero_shot_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model, processor = tiny_model_and_processor()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    synthetic.generate(num_records=60, seed=0).save_to_disk(root / "source")
    synthetic.generate(num_records=40, seed=1).save_to_disk(root / "target")
    mapping = {"synthetic->synthetic": {"AFIB": ["AFIB", "AFLT"], "SR": ["SR", "SBRAD", "STACH"]}}
    (root / "mapping.json").write_text(json.dumps(mapping))
    return root


def pipeline_cosines(model_dir, dataset, classes, descriptions):
    """Raw cosines through the pipeline (a path independent of evaluation.embed_*)."""
    classifier = pipeline(TASK, model=str(model_dir))
    records = [np.asarray(ecg, dtype=np.float32) for ecg in dataset.with_format("numpy")["ecg"]]
    results = classifier(records, sampling_rate=500, candidate_labels=classes, label_descriptions=descriptions,
                         function_to_apply="none", batch_size=8)
    return np.array([[{e["label"]: e["score"] for e in result}[name] for name in classes] for result in results])


def test_eval_script_auc_domain_shift_probe_and_plots(workspace):
    from datasets import load_from_disk

    out = workspace / "out"
    load_script().main(["--model", str(workspace / "model"), "--dataset", str(workspace / "source"),
                        "--domain_shift", str(workspace / "target"), "--domain_mapping", str(workspace / "mapping.json"),
                        "--linear_probe", "--bootstrap", "20", "--output_dir", str(out)])
    results = json.loads((out / "results.json").read_text())
    descriptions = evaluation.load_label_descriptions("synthetic")

    source = load_from_disk(workspace / "source")
    classes = label_names(source)
    y_true = np.asarray(source["test"]["labels"])
    scores = pipeline_cosines(workspace / "model", source["test"], classes, descriptions)
    kept = [i for i in range(len(classes)) if 0 < y_true[:, i].sum() < len(y_true)]
    assert kept and results["zero_shot"]["excluded"] == [c for i, c in enumerate(classes) if i not in kept]
    for i in kept:
        assert results["zero_shot"]["per_class"][classes[i]] == pytest.approx(roc_auc_score(y_true[:, i], scores[:, i]),
                                                                              abs=1e-6)
    assert results["zero_shot"]["macro_auc"] == pytest.approx(
        roc_auc_score(y_true[:, kept], scores[:, kept], average="macro"), abs=1e-6)

    target = load_from_disk(workspace / "target")
    target_labels = np.asarray(target["test"]["labels"])
    column = {name: i for i, name in enumerate(label_names(target))}
    mapped_sr = target_labels[:, [column["SR"], column["SBRAD"], column["STACH"]]].max(axis=1)
    target_scores = pipeline_cosines(workspace / "model", target["test"], ["AFIB", "SR"], descriptions)
    shift = results["domain_shift"]["synthetic"]
    assert shift["n_positive"]["SR"] == int(mapped_sr.sum())
    assert shift["per_class"]["SR"] == pytest.approx(roc_auc_score(mapped_sr, target_scores[:, 1]), abs=1e-6)

    assert list(results["linear_probe"]) == ["1%", "10%", "100%"]
    assert results["linear_probe"]["100%"]["num_train"] == len(source["train"])
    markdown = (out / "results.md").read_text()
    assert "| Method | Training Ratio | Zero-Shot synthetic | Domain Shift → synthetic |" in markdown
    for name in ["zero_shot_roc.png", "zero_shot_auc.png", "domain_shift_synthetic_roc.png"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

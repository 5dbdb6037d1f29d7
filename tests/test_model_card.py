"""Model cards: YAML that `huggingface_hub.ModelCard` parses, with a `model-index` whose macro-AUCs are the numbers of
`training_summary.json` and of `tamer eval`'s results.json, licence, citation; `tamer push` uploads that card and a
later `model.push_to_hub` keeps it. Only the Hub HTTP boundary is replaced (`FakeHub`)."""

import json
from unittest import mock

import pytest
import yaml
from huggingface_hub import ModelCard

from datasets_scripts import synthetic
from tamer_hf.commands import push, zero_shot_eval
from tamer_hf.model_card import LICENSE, MARKER, write_model_card
from tamer_hf.testing_utils import FakeHub, hub_snapshot, tiny_model_and_processor

SUMMARY = {"model_type": "tamer", "family": "TAMER: tri-modal alignment (Zhou et al., CVPR 2026)",
           "dataset": "synthetic (datasets_scripts.synthetic)", "train_records": 100, "completed_steps": 3,
           "zero_shot_prompts": {"prompts": "name", "template": "{}."},
           "test": {"macro_auc": 0.7371428571428571, "num_records": 12, "per_class": {"AFIB": 0.7, "SR": None},
                    "excluded": ["SR"]}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A saved tiny model with a training summary and one real `tamer eval` run under model/eval/."""
    root = tmp_path_factory.mktemp("card")
    model, processor = tiny_model_and_processor()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    (root / "model" / "training_summary.json").write_text(json.dumps(SUMMARY))
    synthetic.generate(num_records=40, seed=2).save_to_disk(root / "data")
    zero_shot_eval.main(["--model", str(root / "model"), "--dataset", str(root / "data"), "--bootstrap", "0"])
    return root / "model"


def header(path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---\n")[1])


def test_the_card_parses_and_its_model_index_equals_the_summary_and_results_files(folder):
    write_model_card(folder, repo_id="org/tamer-ecg")
    results = [json.loads(path.read_text()) for path in sorted((folder / "eval").rglob("results.json"))]
    assert len(results) == 1

    card = ModelCard.load(folder / "README.md")
    assert card.data.license == LICENSE and card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "other" and "zero-shot-ecg-classification" in card.data.tags
    assert card.data.model_name == "tamer-ecg"
    measured = [(entry.task_type, entry.metric_type, entry.dataset_split, entry.metric_value)
                for entry in card.data.eval_results]
    assert measured == [("zero-shot-ecg-classification", "roc_auc", "test", SUMMARY["test"]["macro_auc"]),
                        ("zero-shot-ecg-classification", "roc_auc", "test", results[0]["zero_shot"]["macro_auc"])]
    assert card.data.eval_results[1].dataset_config == results[0]["label_set"]
    # the raw YAML a Hub reader sees
    index = header(folder / "README.md")["model-index"][0]
    assert index["name"] == "tamer-ecg"
    assert [r["metrics"][0]["value"] for r in index["results"]] == [SUMMARY["test"]["macro_auc"],
                                                                    results[0]["zero_shot"]["macro_auc"]]
    assert all(r["metrics"][0]["name"] == "macro-AUC" for r in index["results"])
    assert "```bibtex" in card.text and SUMMARY["family"] in card.text and "## License" in card.text
    assert f"{results[0]['zero_shot']['macro_auc']:.4f}" in card.text and "**0.7371**" in card.text


def test_tamer_push_uploads_the_card_and_model_push_to_hub_keeps_it(folder, tmp_path):
    hub = FakeHub(tmp_path / "hf_home")
    with mock.patch("tamer_hf.hub.HfApi", return_value=hub):
        files = push.main(["--model", str(folder), "--repo_id", "org/tamer-ecg"])
    assert "README.md" in files and "eval/synthetic/results.json" in [f.replace("\\", "/") for f in files]
    snapshot = hub_snapshot(hub.hf_home, "org/tamer-ecg")
    ours = (folder / "README.md").read_text()
    assert (snapshot / "README.md").read_text() == ours and 'model="org/tamer-ecg"' in ours

    model, processor = tiny_model_and_processor()
    with hub.patch_transformers():
        model.push_to_hub("org/tamer-ecg")
        processor.push_to_hub("org/tamer-ecg")
    pushed = ModelCard.load(snapshot / "README.md")
    assert pushed.data.to_dict() == ModelCard.load(folder / "README.md").data.to_dict()
    assert pushed.text == ModelCard.load(folder / "README.md").text


def test_a_card_of_your_own_is_uploaded_as_it_is(folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    own = "---\nlicense: mit\n---\n# My card\n"
    (copy / "README.md").write_text(own)
    hub = FakeHub(tmp_path / "hf_home")
    with mock.patch("tamer_hf.hub.HfApi", return_value=hub):
        push.main(["--model", str(copy), "--repo_id", "org/mine"])
    assert (hub_snapshot(hub.hf_home, "org/mine") / "README.md").read_text() == own
    assert MARKER in (folder / "README.md").read_text()  # ours carries the marker that allows rewriting

"""Class names live in the dataset's Features (`List(ClassLabel)`), so they survive `save_to_disk`, `to_parquet` ->
`load_dataset("parquet")` and the Hub's YAML; training scores validation and test from Parquet files; labels without
names are an error, never a silent skip; folders prepared the old way (multi-hot + names in the description) still read.
"""

import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetInfo, List, Value
from huggingface_hub import DatasetCard, DatasetCardData

from datasets_scripts import label_names, multi_hot_labels, synthetic
from datasets_scripts.common import dataset_description, upgrade_labels
from datasets_scripts.synthetic import SYNTHETIC_LABELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A labelled DatasetDict written by a builder (the shard-by-shard preparation path), 60 records."""
    out = tmp_path_factory.mktemp("prepared") / "synthetic"
    return synthetic.generate(num_records=60, seed=7, output_dir=out), out


def to_parquet_folder(dataset_dict, folder):
    """The Hub's Parquet layout: data/<split>-00000-of-00001.parquet."""
    (folder / "data").mkdir(parents=True)
    for split, dataset in dataset_dict.items():
        dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def expected_multi_hot(dataset):
    """Multi-hot rows computed independently of multi_hot_labels, from the rows' class indices."""
    matrix = np.zeros((len(dataset), len(SYNTHETIC_LABELS)), dtype=np.int8)
    for row, indices in enumerate(dataset["labels"]):
        matrix[row, indices] = 1
    return matrix


def test_class_names_survive_save_to_disk_parquet_and_the_hub_yaml(prepared, tmp_path):
    dataset_dict, out = prepared
    assert label_names(datasets.load_from_disk(str(out))) == list(SYNTHETIC_LABELS)

    reloaded = datasets.load_dataset("parquet", data_dir=str(to_parquet_folder(dataset_dict, tmp_path / "pq")))
    assert sorted(reloaded) == ["test", "train", "validation"]
    for split in reloaded:
        assert label_names(reloaded[split]) == list(SYNTHETIC_LABELS)
        assert reloaded[split]["record_id"] == dataset_dict[split]["record_id"]
        np.testing.assert_array_equal(multi_hot_labels(reloaded[split]), multi_hot_labels(dataset_dict[split]))

    # push_to_hub writes the features into the README's YAML (dataset_info), as here, and load_dataset reads them back
    card_data = DatasetCardData()
    infos = datasets.info.DatasetInfosDict({"default": DatasetInfo(features=dataset_dict["train"].features)})
    infos.to_dataset_card_data(card_data)
    from_hub = DatasetCard(f"---\n{card_data}\n---\n").data.to_dict()
    hub_infos = datasets.info.DatasetInfosDict.from_dataset_card_data(from_hub)
    assert hub_infos["default"].features["labels"] == List(ClassLabel(names=list(SYNTHETIC_LABELS)))


def test_prompt_descriptions_are_found_by_class_names_when_the_metadata_is_lost(prepared, tmp_path):
    from tamer_hf.evaluation import label_set_of

    dataset_dict, _ = prepared
    assert label_set_of(dataset_dict) == "synthetic"  # from the builder's metadata
    reloaded = datasets.load_dataset("parquet", data_dir=str(to_parquet_folder(dataset_dict, tmp_path / "pq")))
    assert reloaded["test"].info.description in (None, "")  # Parquet keeps the Features only
    assert label_set_of(reloaded["test"]) == "synthetic"  # found by its class names instead
    ptbxl_like = Dataset.from_dict({"labels": [[0]]}, features=datasets.Features(
        {"labels": List(ClassLabel(names=["NORM", "MI", "STTC", "CD", "HYP"]))}))
    assert label_set_of(ptbxl_like) == "ptbxl_super"
    unknown = Dataset.from_dict({"labels": [[0]]}, features=datasets.Features(
        {"labels": List(ClassLabel(names=["NORM", "SOMETHING_ELSE"]))}))
    assert label_set_of(unknown) is None


def test_multi_hot_labels_follow_the_rows_of_a_view(prepared):
    dataset_dict, _ = prepared
    train = dataset_dict["train"]
    view = train.select([3, 0, 5]).shuffle(seed=1)
    matrix = multi_hot_labels(view)
    assert matrix.shape == (3, len(SYNTHETIC_LABELS)) and matrix.dtype == np.int8
    np.testing.assert_array_equal(matrix, expected_multi_hot(view))
    assert matrix.sum() == sum(len(indices) for indices in view["labels"]) > 0


def test_pretraining_on_parquet_files_scores_validation_and_test(prepared, tmp_path):
    dataset_dict, _ = prepared
    folder = to_parquet_folder(dataset_dict, tmp_path / "pq")
    out = tmp_path / "run"
    command = [sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--dataset", str(folder),
               "--text_encoder", "local", "--model_preset", "tiny", "--batch_size", "8", "--max_steps", "2",
               "--eval_steps", "1", "--checkpointing_steps", "0", "--output_dir", str(out), "--report_to", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["validation"]["step"] == 2 and 0 <= summary["validation"]["macro_auc"] <= 1
    assert f"zero-shot macro-AUC (validation, {len(dataset_dict['validation'])} records)" in done.stdout
    assert summary["test"]["num_records"] == len(dataset_dict["test"])
    assert list(summary["test"]["per_class"]) == list(SYNTHETIC_LABELS)


def test_labels_without_class_names_are_an_error_not_a_skip(tmp_path):
    from tamer_hf.training import has_labels

    bare = Dataset.from_dict({"ecg": [np.zeros((12, 4), np.float32)], "labels": [[0, 1, 0]]},
                             features=datasets.Features({"ecg": datasets.Array2D((12, 4), "float32"),
                                                         "labels": List(Value("int8"), length=3)}))
    bare.to_parquet(str(tmp_path / "validation.parquet"))
    reloaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "validation.parquet"), split="train")
    with pytest.raises(ValueError, match="carries no class names.*ClassLabel"):
        has_labels(reloaded)
    assert not has_labels(reloaded.remove_columns("labels"))  # unlabelled data is simply not scored
    named = upgrade_labels(reloaded, names=["NORM", "AFIB", "STE"])  # the fix the error names
    assert has_labels(named) and named["labels"] == [[1]] and label_names(named) == ["NORM", "AFIB", "STE"]
    with pytest.raises(ValueError, match="2 class names for multi-hot labels of shape"):
        upgrade_labels(reloaded, names=["NORM", "AFIB"])


def test_pretraining_stops_with_one_error_line_on_a_validation_split_without_class_names(prepared, tmp_path):
    dataset_dict, _ = prepared
    nameless = datasets.DatasetDict({  # multi-hot lists as other tools write them: no class names anywhere
        split: dataset.remove_columns("labels").add_column(
            "labels", multi_hot_labels(dataset).tolist(), feature=List(Value("int8"), length=len(SYNTHETIC_LABELS)))
        for split, dataset in dataset_dict.items()})
    folder = to_parquet_folder(nameless, tmp_path / "pq")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--dataset", str(folder),
                           "--text_encoder", "local", "--model_preset", "tiny", "--batch_size", "8", "--max_steps", "1",
                           "--output_dir", str(tmp_path / "run"), "--report_to", "none"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "error: --dataset: the validation split: the `labels` column" in done.stderr
    assert "carries no class names" in done.stderr


def test_a_folder_prepared_the_old_way_still_reads(tmp_path):
    names = ["NORM", "AFIB", "STE"]
    rows = [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    features = datasets.Features({"record_id": Value("string"), "labels": List(Value("int8"), length=3)})
    old = Dataset.from_dict({"record_id": ["a", "b", "c"], "labels": rows},
                            info=DatasetInfo(description=dataset_description("cpsc2018", names), features=features))
    old.save_to_disk(str(tmp_path / "old"))
    old = datasets.load_from_disk(str(tmp_path / "old"))
    assert label_names(old) == names
    np.testing.assert_array_equal(multi_hot_labels(old), rows)
    upgraded = upgrade_labels(old)
    assert upgraded.features["labels"] == List(ClassLabel(names=names))
    assert upgraded["labels"] == [[0], [1, 2], []]

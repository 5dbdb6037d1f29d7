"""`python -m datasets_scripts.push` uploads exactly the dataset files of a prepared folder with its card; a copy of
just those files (what the Hub repository holds) loads with `load_dataset` and keeps the class names. Only the Hub
HTTP API (`HfApi.create_repo` / `HfApi.upload_folder`) is mocked."""

import shutil
from unittest import mock

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard

from datasets_scripts import label_names, mimic_iv_ecg, multi_hot_labels, push, synthetic
from datasets_scripts.synthetic import SYNTHETIC_LABELS


def test_pushed_files_load_back_with_named_labels(tmp_path):
    out = tmp_path / "synthetic"
    prepared = synthetic.generate(num_records=40, seed=4, output_dir=out)
    with mock.patch("huggingface_hub.HfApi.create_repo") as create_repo, \
            mock.patch("huggingface_hub.HfApi.upload_folder") as upload_folder:
        files = push.main(["--dataset_dir", str(out), "--repo_id", "org/synthetic-ecg", "--private"])
    assert create_repo.call_args.kwargs == {"repo_id": "org/synthetic-ecg", "repo_type": "dataset", "private": True,
                                            "exist_ok": True}
    upload = upload_folder.call_args.kwargs
    assert upload["repo_type"] == "dataset" and upload["folder_path"] == str(out) and upload["allow_patterns"] == files
    assert "README.md" in files and "prepare_manifest.json" not in files
    assert {name.split("/")[0] for name in files if name.endswith(".arrow")} == {"train", "validation", "test"}

    hub = tmp_path / "hub"  # the repository: exactly the uploaded files
    for name in files:
        (hub / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / name, hub / name)
    DatasetCard.load(hub / "README.md")
    from_hub = datasets.load_dataset(str(hub))
    assert label_names(from_hub) == list(SYNTHETIC_LABELS)
    for split in prepared:
        assert from_hub[split]["record_id"] == prepared[split]["record_id"]
        np.testing.assert_array_equal(multi_hot_labels(from_hub[split]), multi_hot_labels(prepared[split]))


def test_mimic_is_pushed_only_as_private(tmp_path):
    raw = synthetic.write_mimic_layout(tmp_path / "raw", num_records=6)
    mimic_iv_ecg.build(raw, tmp_path / "mimic", val_fraction=0.5, num_workers=1)
    with mock.patch("huggingface_hub.HfApi.create_repo") as create_repo, \
            mock.patch("huggingface_hub.HfApi.upload_folder"):
        with pytest.raises(ValueError, match=r"\(credentialed data\): push it only with private=True"):
            push.push_dataset_to_hub(tmp_path / "mimic", "org/mimic")
        create_repo.assert_not_called()
        assert "README.md" in push.push_dataset_to_hub(tmp_path / "mimic", "org/mimic", private=True)


def test_a_folder_without_a_card_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder written by a datasets_scripts builder"):
        push.dataset_files(tmp_path)

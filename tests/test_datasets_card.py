"""Every builder writes a README.md dataset card whose YAML parses with `huggingface_hub.DatasetCard` and agrees with
the data: split sizes, features with the class names, configs that load the folder, licence, citation, label table.

`check_dataset_card` is also called by the builder tests (test_datasets_builders.py, test_cpsc_protocol.py,
test_datasets_code_custom.py) on each source's own output.
"""

import re
from pathlib import Path

import datasets
import numpy as np
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard

from datasets_scripts import label_names, multi_hot_labels, synthetic
from datasets_scripts.card import CARD_NAME


def check_dataset_card(output_dir, dataset_dict, license: str, citation: bool = True) -> DatasetCard:
    card = DatasetCard.load(Path(output_dir) / CARD_NAME)
    data = card.data.to_dict()
    assert data["license"] == license and data["pretty_name"] and "ecg" in data["tags"]
    sizes = {split["name"]: split["num_examples"] for split in data["dataset_info"]["splits"]}
    assert sizes == {split: len(dataset) for split, dataset in dataset_dict.items()}
    features = DatasetInfosDict.from_dataset_card_data(data)["default"].features
    assert features == next(iter(dataset_dict.values())).features  # class names included
    for entry in data["configs"][0]["data_files"]:
        assert list(Path(output_dir).glob(entry["path"])), entry
    for split, dataset in dataset_dict.items():
        assert re.search(rf"^\| {split} \| {len(dataset)} \|$", card.text, re.MULTILINE), split
    names = label_names(dataset_dict)
    assert ("zero-shot-classification" in data["task_categories"]) == bool(names)
    splits = [split for split in ("train", "validation", "test") if split in dataset_dict]
    for index, name in enumerate(names):  # one row per class: index, name, positives per split
        counts = [int(multi_hot_labels(dataset_dict[split])[:, index].sum()) if len(dataset_dict[split]) else 0
                  for split in splits]
        row = f"| {index} | {name} | " + " | ".join(map(str, counts)) + " |"
        assert row in card.text, row
    assert ("```bibtex" in card.text) == citation and "## Preprocessing" in card.text
    return card


def test_synthetic_card_parses_and_loads_its_own_configs(tmp_path):
    out = tmp_path / "synthetic"
    dataset_dict = synthetic.generate(num_records=40, seed=2, output_dir=out)
    card = check_dataset_card(out, dataset_dict, license="apache-2.0", citation=False)
    assert card.data.task_categories == ["zero-shot-classification", "feature-extraction"]
    assert "- `seed`: 2" in card.text  # the protocol section lists the builder's settings

    by_card = datasets.load_dataset(str(out))  # the YAML `configs` point the Hub / load_dataset at the Arrow files
    assert {split: len(by_card[split]) for split in by_card} == {split: len(d) for split, d in dataset_dict.items()}
    assert label_names(by_card) == label_names(dataset_dict)
    np.testing.assert_array_equal(multi_hot_labels(by_card["train"]), multi_hot_labels(dataset_dict["train"]))

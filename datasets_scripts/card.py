"""The dataset card (README.md with a YAML header) that every builder writes next to its data.

The header holds what the Hub reads: licence, task categories, tags, pretty name, `configs` (which files make which
split) and `dataset_info` (features with the class names, split sizes) in the form `push_to_hub` writes it. The
body says where the data comes from, under which licence, how to cite it, the splits, the label set, the protocol
and the preprocessing. Each source module declares its facts once as a `SourceCard`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import DatasetInfo
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict
from huggingface_hub import DatasetCard, DatasetCardData

from .common import LEADS, SPLITS, TARGET_FS, TARGET_LEN, label_names, multi_hot_labels

CARD_NAME = "README.md"
BASE_TAGS = ["ecg", "electrocardiogram", "12-lead-ecg", "medical", "time-series"]
PREPROCESSING = (
    f"Every record is 12 leads in the order {', '.join(LEADS)} (matched by lead name), in millivolts, resampled to "
    f"{TARGET_FS} Hz (polyphase) and cut to {TARGET_LEN} samples ({TARGET_LEN // TARGET_FS} s: cropped, or "
    "zero-padded at the end), not normalised. A lead with at most 1 % NaN/Inf samples is repaired by linear "
    "interpolation; records with more, with a missing lead, a flat lead or an unreadable file are dropped and counted "
    "by reason in `preparation_summary.json`."
)


@dataclass(frozen=True)
class SourceCard:
    """What a source module knows about its data, once."""

    pretty_name: str
    license: str  # a Hub licence id ("cc-by-4.0", "other", ...)
    homepage: str | None
    citation: str | None
    summary: str
    split_rule: str  # how records are assigned to splits when no --split_files are given
    license_name: str | None = None  # with license="other"
    license_link: str | None = None
    tags: list[str] = field(default_factory=list)


def card_data(source: SourceCard, dataset_dict) -> DatasetCardData:
    """The YAML header: licence, task categories, tags, pretty name, `configs` and `dataset_info`."""
    labelled = "labels" in next(iter(dataset_dict.values())).features
    has_reports = "report" in next(iter(dataset_dict.values())).features
    tasks = (["zero-shot-classification"] if labelled else []) + (["feature-extraction"] if has_reports else [])
    data = DatasetCardData(
        license=source.license, license_name=source.license_name, license_link=source.license_link,
        pretty_name=source.pretty_name, task_categories=tasks, tags=BASE_TAGS + list(source.tags),
        size_categories=[_size_category(sum(len(split) for split in dataset_dict.values()))],
        configs=[{"config_name": "default",
                  "data_files": [{"split": split, "path": f"{split}/*.arrow"} for split in dataset_dict]}],
    )
    info = DatasetInfo(features=next(iter(dataset_dict.values())).features)
    info.splits = SplitDict.from_split_dict([{"name": split, "num_examples": len(dataset)}
                                             for split, dataset in dataset_dict.items()])
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)  # the same `dataset_info` as push_to_hub writes
    return data


def dataset_card(source: SourceCard, dataset_dict, metadata: dict, summary: dict | None = None,
                 split_files: dict | None = None) -> DatasetCard:
    """The whole card for a prepared `DatasetDict`; `metadata` is the builder's description dict (protocol, task,
    ...), `summary` its preparation summary (drop reasons), `split_files` the external split used, if any."""
    sections = [f"# {source.pretty_name}", source.summary, _source_section(source),
                _splits_section(dataset_dict, source.split_rule, split_files),
                _labels_section(dataset_dict), _protocol_section(metadata), _preprocessing_section(summary)]
    if source.citation:
        sections.append(f"## Citation\n\n```bibtex\n{source.citation.strip()}\n```")
    body = "\n\n".join(section for section in sections if section)
    return DatasetCard(f"---\n{card_data(source, dataset_dict).to_yaml()}\n---\n\n{body}\n")


def write_dataset_card(output_dir, source: SourceCard, dataset_dict, metadata: dict,
                       summary: dict | None = None, split_files: dict | None = None) -> Path:
    path = Path(output_dir) / CARD_NAME
    dataset_card(source, dataset_dict, metadata, summary, split_files).save(path)
    return path


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "1M<n<10M"


def _source_section(source: SourceCard) -> str:
    licence = source.license_name or source.license
    lines = ["## Source and licence", ""]
    if source.homepage:
        lines.append(f"- Source: {source.homepage}")
    lines.append(f"- Licence: {licence}" + (f" ({source.license_link})" if source.license_link else ""))
    lines.append("- Prepared with `datasets_scripts` of tamer-hf; load with `datasets.load_from_disk(folder)` or "
                 "`datasets.load_dataset(folder)`.")
    return "\n".join(lines)


def _splits_section(dataset_dict, split_rule: str, split_files: dict | None) -> str:
    if split_files:
        rule = "External split files, matched by record id (records in none of them are dropped): " + ", ".join(
            f"{split} = `{Path(path).name}`" for split, path in split_files.items())
    else:
        rule = split_rule
    rows = [f"| {split} | {len(dataset_dict[split])} |" for split in SPLITS if split in dataset_dict]
    return f"## Splits\n\n{rule}\n\n| split | records |\n|---|---|\n" + "\n".join(rows)


def _labels_section(dataset_dict) -> str | None:
    names = label_names(dataset_dict)
    if not names:
        return None
    splits = [split for split in SPLITS if split in dataset_dict]
    positives = {split: multi_hot_labels(dataset_dict[split]).sum(axis=0) if len(dataset_dict[split])
                 else np.zeros(len(names), dtype=int) for split in splits}
    header = "| index | label | " + " | ".join(f"{split} positives" for split in splits) + " |"
    rule = "|---|---|" + "---|" * len(splits)
    rows = [f"| {index} | {name} | " + " | ".join(str(int(positives[split][index])) for split in splits) + " |"
            for index, name in enumerate(names)]
    return ("## Label set\n\n`labels` is `List(ClassLabel)`: each record lists the indices of its classes "
            f"({len(names)} classes, multi-label).\n\n" + "\n".join([header, rule, *rows]))


def _protocol_section(metadata: dict) -> str | None:
    settings = {key: value for key, value in metadata.items()
                if key not in ("tamer_source", "label_names", "leads", "units", "sampling_rate", "num_records")}
    if not settings:
        return None
    lines = [f"- `{key}`: {value if isinstance(value, str) else json.dumps(value)}" for key, value in settings.items()]
    return "## Protocol\n\n" + "\n".join(lines)


def _preprocessing_section(summary: dict | None) -> str:
    lines = ["## Preprocessing", "", PREPROCESSING]
    dropped = (summary or {}).get("dropped") or {}
    if dropped:
        lines += ["", "| dropped records | reason |", "|---|---|"]
        lines += [f"| {count} | {reason} |" for reason, count in sorted(dropped.items(), key=lambda item: -item[1])]
    return "\n".join(lines)

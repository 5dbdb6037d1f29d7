"""Chapman-Shaoxing-Ningbo (PhysioNet `ecg-arrhythmia` 1.0.0): WFDBRecords/NN/NNN/JSnnnnn.{hea,mat}.

Diagnoses are the header's `# Dx:` SNOMED-CT codes, mapped to acronyms with ConditionNames_SNOMED-CT.csv
(AcronymName, FullName, Snomed_CT). Codes and acronyms are matched as exact tokens: MERL built its label columns
with substring tests, so "AF" fired on "AFIB" and "ST" on "STE" (paper_code.md §2.8); here neither happens.
Where the table gives one code several acronyms (e.g. 164909002 LBBB/LBBBB/LFBBB), the first row wins.
label_set "merl" = the 38 MERL classes (default), "all" = every acronym of the table.
protocol "merl" takes labels and membership from MERL's chapman_*.csv as shipped (bugs included), for comparability.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import datasets
import pandas as pd

from . import cli
from .card import SourceCard
from .common import (DropRecord, dataset_description, ecg_features, find_records, header_dx_codes, label_indices,
                     read_split_files, read_wfdb, record_id_from_split_row, stamp_split_counts, standardize_signal)
from .log import progress_bar
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv

MERL_LABELS = ("AQW", "UW", "SR", "WPW", "2AVB", "AT", "VB", "ARS", "STTC", "SA", "STE", "VPB", "TWO", "STTU", "ALS",
               "APB", "2AVB1", "PRIE", "CCR", "CR", "AF", "AVB", "QTIE", "LBBB", "VEB", "SVT", "RBBB", "1AVB", "STDD",
               "MI", "AFIB", "TWC", "PWC", "ERV", "RVH", "LVH", "ST", "JEB")
CONDITION_TABLE = "ConditionNames_SNOMED-CT.csv"
CARD = SourceCard(
    pretty_name="Chapman-Shaoxing-Ningbo (tamer-hf preparation)", license="cc-by-4.0",
    homepage="https://physionet.org/content/ecg-arrhythmia/1.0.0/",
    summary="Chapman-Shaoxing-Ningbo: 45,152 10 s 12-lead ECGs at 500 Hz with SNOMED-CT diagnoses, mapped to "
            "acronyms by exact code.",
    citation="""@article{zheng2020chapman,
  title = {A 12-lead electrocardiogram database for arrhythmia research covering more than 10,000 patients},
  author = {Zheng, Jianwei and Zhang, Jianming and Danioko, Sidy and Yao, Hai and Guo, Hangyuan and
            Rakovski, Cyril},
  journal = {Scientific Data}, volume = {7}, pages = {48}, year = {2020}, doi = {10.1038/s41597-020-0386-x}
}""",
    split_rule="The project split: a hash of the record id (no patient ids in this source), about 80 / 10 / 10 %.",
    tags=["chapman", "ningbo"],
)
_MERL_METADATA_COLUMNS = 3  # ecg_path, age, diagnose


def read_condition_table(path: Path) -> tuple[dict[str, str], list[str]]:
    """ConditionNames_SNOMED-CT.csv -> ({SNOMED code: acronym}, acronyms in table order)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"condition table not found: {path} (pass --condition_table)")
    table = read_csv(path, dtype=str)
    if not {"AcronymName", "Snomed_CT"} <= set(table.columns):
        raise ValueError(f"{Path(path).name} lacks the columns AcronymName and Snomed_CT")
    code_to_acronym = {}
    for acronym, code in zip(table["AcronymName"].str.strip(), table["Snomed_CT"].str.strip()):
        code_to_acronym.setdefault(code, acronym)
    return code_to_acronym, list(dict.fromkeys(table["AcronymName"].str.strip()))


def dx_acronyms(codes, code_to_acronym: dict) -> tuple[list[str], list[str]]:
    """Exact code lookup -> (acronyms, unmapped codes)."""
    return ([code_to_acronym[c] for c in codes if c in code_to_acronym],
            [c for c in codes if c not in code_to_acronym])


def read_merl_labels(split_files: dict) -> dict[str, str]:
    """MERL chapman CSVs -> {record_id: 'A|B'} from their one-hot columns, as shipped (substring bugs included)."""
    labels = {}
    for path in split_files.values():
        table = read_csv(path, skip_blank_lines=True)
        names = list(table.columns[_MERL_METADATA_COLUMNS:])
        for row in table.to_dict("records"):
            labels[record_id_from_split_row(row)] = "|".join(n for n in names if int(row[n]) == 1)
    return labels


def _load_csn(task: dict, label_list: tuple) -> dict:
    signal, names, fs = read_wfdb(task["path"])
    if not task["label_names"]:
        raise DropRecord("no label of the label set")
    return {"ecg": standardize_signal(signal, names, fs), "record_id": task["record_id"], "patient_id": "",
            "labels": label_indices(task["label_names"].split("|"), list(label_list))}


def _records_table(raw_dir: Path, code_to_acronym: dict, label_list, summary: PreparationSummary) -> pd.DataFrame:
    rows = []
    wanted = set(label_list)
    for record in progress_bar(find_records(raw_dir), desc="CSN headers", unit="rec"):
        acronyms, unmapped = dx_acronyms(header_dx_codes(record), code_to_acronym)
        for code in unmapped:
            summary.notes[f"SNOMED code {code} not in the condition table"] += 1
        names = sorted({a for a in acronyms if a in wanted})
        for outside in sorted(set(acronyms) - wanted):  # e.g. SB, not one of MERL's 38: visible, never silent
            summary.notes[f"label {outside} is not in the label set (--label_set all keeps it)"] += 1
        rows.append((record.name, str(record), "|".join(names)))
    return pd.DataFrame(rows, columns=["record_id", "path", "label_names"]).assign(patient_id="")


def build(raw_dir, output_dir=None, label_set: str = "merl", protocol: str = "default", split_files=None,
          condition_table=None, num_workers: int = 2, shard_size: int = 1000, overwrite: bool = False):
    """CSN as a DatasetDict (labels by exact SNOMED code); project split by record id unless `split_files`."""
    raw_dir = raw_folder(raw_dir)
    if label_set not in ("merl", "all"):
        raise ValueError(f"unknown label_set {label_set!r} (merl or all)")
    if protocol not in ("default", "merl"):
        raise ValueError(f"unknown protocol {protocol!r} (default or merl)")
    if protocol == "merl" and not split_files:
        raise ValueError("protocol='merl' takes its labels from MERL's chapman CSVs: pass split_files")
    code_to_acronym, all_acronyms = read_condition_table(condition_table or raw_dir / CONDITION_TABLE)
    label_list = tuple(MERL_LABELS if label_set == "merl" or protocol == "merl" else all_acronyms)
    summary = PreparationSummary()
    table = _records_table(raw_dir, code_to_acronym, label_list, summary)
    if protocol == "merl":
        table["label_names"] = table["record_id"].map(read_merl_labels(split_files)).fillna("")
    table = assign_splits(table, summary, split_files)
    output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="tamer_csn_"))
    prepare(table, partial(_load_csn, label_list=label_list), ecg_features(label_list), output_dir,
            source="csn", description=dataset_description("csn", list(label_list), label_set=label_set,
                                                          protocol=protocol),
            config={"source": "csn", "raw_dir": str(raw_dir), "label_set": label_set, "protocol": protocol,
                    "split_files": split_files, "condition_table": str(condition_table)},
            card=CARD, num_workers=num_workers, shard_size=shard_size, pre_dropped=summary, overwrite=overwrite)
    stamp_split_counts(output_dir, "csn", protocol=protocol)
    return datasets.load_from_disk(str(output_dir))


def main(argv=None):
    parser = cli.base_parser("Prepare Chapman-Shaoxing-Ningbo (CSN) as a DatasetDict.")
    cli.add_split_arguments(parser)
    parser.add_argument("--label_set", choices=("merl", "all"), default="merl")
    parser.add_argument("--condition_table", help=f"path of {CONDITION_TABLE} (default: raw_dir/{CONDITION_TABLE})")
    args = cli.parse_args(parser, argv)
    build(args.raw_dir, args.output_dir, args.label_set, args.protocol, cli.split_files_from(args),
          args.condition_table, args.num_workers, args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)

"""MIMIC-IV-ECG (pre-training corpus): machine reports + 10 s 12-lead records, patient-level validation split.

Raw layout: record_list.csv (subject_id, study_id, path, ...), machine_measurements.csv (subject_id, study_id,
report_0 .. report_17, ...), files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat} with leads I, II, III, aVR, aVF, aVL,
V1-V6 (reordered to canonical by name). ~800k records: prepared shard by shard (constant memory, resumable).
MIMIC is credentialed data: never push the prepared dataset to a public Hub repository.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .card import SourceCard
from .common import dataset_description, ecg_features, read_wfdb, standardize_signal
from .log import progress_bar
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv

REPORT_COLUMNS = [f"report_{k}" for k in range(18)]
MIN_REPORT_WORDS = 4  # MERL/MELP keep reports of at least 4 words (771,693 records)
_EDGE_JUNK = " *=-\t\r\n"
CARD = SourceCard(
    pretty_name="MIMIC-IV-ECG reports (tamer-hf preparation)", license="other",
    license_name="the PhysioNet licence of MIMIC-IV-ECG",
    license_link="https://physionet.org/content/mimic-iv-ecg/1.0/",
    homepage="https://physionet.org/content/mimic-iv-ecg/1.0/",
    summary="MIMIC-IV-ECG: about 800,000 10 s 12-lead ECGs with their machine reports, the ECG-report pre-training "
            "corpus. Keep this preparation private: do not push it to a public Hub repository.",
    citation="""@misc{gow2023mimicivecg,
  title = {{MIMIC-IV-ECG}: Diagnostic Electrocardiogram Matched Subset (version 1.0)},
  author = {Gow, Brian and Pollard, Tom and Nathanson, Larry A. and Johnson, Alistair and Moody, Benjamin and
            Fernandes, Chrystinne and Greenbaum, Nathaniel and Waks, Jonathan W. and Eslami, Parastou and
            Carbonati, Tanner and Chaudhari, Ashish and Herbst, Elizabeth and Moukheiber, Dana and Berkowitz, Seth and
            Mark, Roger and Horng, Steven},
  howpublished = {PhysioNet}, year = {2023}, doi = {10.13026/4nqg-sb35}
}""",
    split_rule="Patient-level: a hash of subject_id sends --val_fraction (default 2 %) of the patients to validation; "
               "test is empty.",
    tags=["mimic-iv-ecg", "ecg-report"],
)


def clean_report(statements) -> str:
    """Non-empty report_* statements -> one lower-cased report: 'sinus rhythm. normal ecg.'"""
    parts = []
    for statement in statements:
        if not isinstance(statement, str):
            continue
        text = re.sub(r"\s+", " ", re.sub("ekg", "ecg", statement, flags=re.IGNORECASE)).strip(_EDGE_JUNK)
        text = text.rstrip(". ").lower()
        if text:
            parts.append(text)
    return ". ".join(parts) + "." if parts else ""


def _require(path: Path, columns, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    header = read_csv(path, nrows=0).columns
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path.name} lacks column(s) {', '.join(missing)}")


def read_reports(path: Path, summary: PreparationSummary, chunk_rows: int = 100_000):
    """({study_id: report} for reports of >= 4 words, all study ids seen), read in chunks of the 800k-row CSV."""
    reports, measured = {}, set()
    chunks = read_csv(path, usecols=["study_id"] + REPORT_COLUMNS, chunksize=chunk_rows, dtype=str)
    for chunk in progress_bar(chunks, desc=f"{path.name} ({chunk_rows} rows each)", unit="chunk"):
        for study_id, *statements in chunk.itertuples(index=False):
            study_id = str(int(study_id))
            measured.add(study_id)
            report = clean_report(statements)
            if len(report.split()) >= MIN_REPORT_WORDS:
                reports[study_id] = report
            else:
                summary.drop(f"report shorter than {MIN_REPORT_WORDS} words", study_id)
    return reports, measured


def _load_mimic(task: dict, signal_dtype: str) -> dict:
    signal, names, fs = read_wfdb(task["path"])
    ecg = standardize_signal(signal, names, fs)  # (12, 5000), aVF/aVL fixed by lead name
    return {"ecg": ecg.astype(signal_dtype), "record_id": task["record_id"], "patient_id": task["patient_id"],
            "report": task["report"]}


def build(raw_dir, output_dir=None, val_fraction: float = 0.02, num_workers: int = 2, shard_size: int = 1000,
          signal_dtype: str = "float32", split_files=None, overwrite: bool = False, stop_after_shards=None):
    """Prepare MIMIC-IV-ECG as a DatasetDict (train / validation by patient; test is empty unless split_files)."""
    raw_dir = raw_folder(raw_dir)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    record_csv, report_csv = raw_dir / "record_list.csv", raw_dir / "machine_measurements.csv"
    _require(record_csv, ["subject_id", "study_id", "path"], "record_list.csv")
    _require(report_csv, ["subject_id", "study_id"] + REPORT_COLUMNS, "machine_measurements.csv")
    summary = PreparationSummary()
    reports, measured = read_reports(report_csv, summary)
    records = read_csv(record_csv, usecols=["subject_id", "study_id", "path"], dtype=str)
    records["record_id"] = records["study_id"].astype(int).astype(str)
    records["patient_id"] = records["subject_id"].astype(int).astype(str)
    records["report"] = records["record_id"].map(reports)
    for record_id in records.loc[records["report"].isna(), "record_id"]:
        if record_id not in measured:  # the others were counted as too-short reports
            summary.drop("no row in machine_measurements.csv", record_id)
    records = records[records["report"].notna()]
    records["path"] = [str(raw_dir / p) for p in records["path"]]
    table = assign_splits(records[["record_id", "patient_id", "path", "report"]], summary, split_files,
                          fractions=(1 - val_fraction, val_fraction, 0.0))
    features = ecg_features(None, with_report=True, signal_dtype=signal_dtype)
    return prepare(table, partial(_load_mimic, signal_dtype=signal_dtype), features, output_dir,
                   source="mimic_iv_ecg", description=dataset_description("mimic_iv_ecg", []),
                   config={"source": "mimic_iv_ecg", "raw_dir": str(raw_dir), "val_fraction": val_fraction,
                           "split_files": split_files, "signal_dtype": signal_dtype},
                   card=CARD, num_workers=num_workers, shard_size=shard_size, pre_dropped=summary,
                   overwrite=overwrite, stop_after_shards=stop_after_shards)


def main(argv=None):
    parser = cli.base_parser("Prepare MIMIC-IV-ECG (reports + signals) as a DatasetDict.")
    parser.add_argument("--val_fraction", type=float, default=0.02, help="patient-level validation fraction")
    parser.add_argument("--signal_dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV", help="external split by study_id")
    args = cli.parse_args(parser, argv)
    build(args.raw_dir, args.output_dir, args.val_fraction, args.num_workers, args.shard_size, args.signal_dtype,
          cli.split_files_from(args), args.overwrite)


if __name__ == "__main__":
    cli.run(main)

"""CPSC 2018 (ICBEB), 9 classes, in either distribution layout.

- Original challenge layout: A0001.mat ... (MATLAB struct `ECG` with fields sex, age, data = 12 x N in mV, leads
  I, II, III, aVR, aVL, aVF, V1-V6) + REFERENCE.csv (Recording, First_label, Second_label, Third_label; 1..9).
- PhysioNet/CinC 2020 layout: A0001.hea (`# Dx:` SNOMED-CT codes) + A0001.mat (`val`, 12 x N int16).
Records are 6-60 s: the first 10 s are kept, shorter ones zero-padded. `protocol="merl"` keeps only the first
2500 samples (5 s) and zero-pads to 5000, as MERL/METS did; required to compare with published numbers.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .common import (DropRecord, LEADS, dataset_description, ecg_features, find_records, header_dx_codes,
                     multi_hot, read_wfdb, standardize_signal)
from .prepare import PreparationSummary, assign_splits, prepare

CPSC_LABELS = ("AFIB", "VPC", "NORM", "1AVB", "CRBBB", "STE", "PAC", "CLBBB", "STD")  # MERL column order
REFERENCE_CODES = {1: "NORM", 2: "AFIB", 3: "1AVB", 4: "CLBBB", 5: "CRBBB", 6: "PAC", 7: "VPC", 8: "STD", 9: "STE"}
# SNOMED-CT codes used for the CPSC classes in the PhysioNet/CinC 2020 headers (with their scored equivalents).
SNOMED_CODES = {
    "426783006": "NORM", "164889003": "AFIB", "270492004": "1AVB", "164909002": "CLBBB", "733534002": "CLBBB",
    "59118001": "CRBBB", "713427006": "CRBBB", "284470004": "PAC", "63593006": "PAC", "164884008": "VPC",
    "427172004": "VPC", "17338001": "VPC", "429622005": "STD", "164931005": "STE",
}
MERL_KEPT_SAMPLES = 2500


def read_reference(path: Path) -> dict[str, list[str]]:
    """REFERENCE.csv -> {record: [label names]} from First/Second/Third_label (1..9)."""
    table = pd.read_csv(path)
    if "Recording" not in table.columns or "First_label" not in table.columns:
        raise ValueError(f"{path.name} lacks the columns Recording and First_label")
    label_columns = [c for c in ("First_label", "Second_label", "Third_label") if c in table.columns]
    references = {}
    for row in table.itertuples(index=False):
        row = row._asdict()
        codes = [int(row[c]) for c in label_columns if pd.notna(row[c])]
        references[str(row["Recording"])] = [REFERENCE_CODES[c] for c in codes if c in REFERENCE_CODES]
    return references


def read_original_mat(path: Path) -> np.ndarray:
    """Original CPSC .mat -> (12, N) mV."""
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path))["ECG"]["data"][0, 0], dtype=np.float32)
    except Exception as error:  # scipy raises assorted types on corrupt MAT files
        raise DropRecord(f"unreadable .mat file ({type(error).__name__})") from None


def _load_cpsc(task: dict, protocol: str) -> dict:
    if task["layout"] == "cinc":
        signal, names, fs = read_wfdb(task["path"])
    else:
        signal, names, fs = read_original_mat(Path(task["path"])), LEADS, 500.0
    ecg = standardize_signal(signal, names, fs)  # (12, 5000)
    if protocol == "merl":
        ecg = ecg.copy()
        ecg[:, MERL_KEPT_SAMPLES:] = 0.0  # MERL keeps 5 s and zero-pads (paper_code.md §2.8)
    return {"ecg": ecg, "record_id": task["record_id"], "patient_id": "",
            "labels": multi_hot(task["label_names"].split("|"), list(CPSC_LABELS))}


def _records_table(raw_dir: Path, reference_csv, summary: PreparationSummary) -> pd.DataFrame:
    headers = find_records(raw_dir)
    if headers:
        rows = []
        for record in headers:
            codes = header_dx_codes(record)
            for code in codes:
                if code not in SNOMED_CODES:
                    summary.notes[f"SNOMED code {code} is not a CPSC class (ignored)"] += 1
            names = sorted({SNOMED_CODES[c] for c in codes if c in SNOMED_CODES})
            rows.append((record.name, str(record), "cinc", "|".join(names)))
    else:
        reference_csv = Path(reference_csv) if reference_csv else raw_dir / "REFERENCE.csv"
        if not reference_csv.is_file():
            raise FileNotFoundError(f"no WFDB headers in {raw_dir} and no REFERENCE.csv at {reference_csv}")
        references = read_reference(reference_csv)
        mats = {p.stem: p for p in sorted(raw_dir.rglob("*.mat"))}
        for record in sorted(set(references) - set(mats)):
            summary.drop("listed in REFERENCE.csv but no .mat file", record)
        rows = [(name, str(path), "original", "|".join(references.get(name, []))) for name, path in mats.items()]
    return pd.DataFrame(rows, columns=["record_id", "path", "layout", "label_names"]).assign(patient_id="")


def build(raw_dir, output_dir=None, protocol: str = "default", split_files=None, reference_csv=None,
          num_workers: int = 2, shard_size: int = 1000, overwrite: bool = False):
    """CPSC2018 as a DatasetDict with the 9 classes; project split by record id unless `split_files` (MERL icbeb)."""
    if protocol not in ("default", "merl"):
        raise ValueError(f"unknown protocol {protocol!r} (default or merl)")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"raw_dir does not exist: {raw_dir}")
    summary = PreparationSummary()
    table = _records_table(raw_dir, reference_csv, summary)
    unlabeled = table["label_names"] == ""
    for record_id in table.loc[unlabeled, "record_id"]:
        summary.drop("no CPSC label", record_id)
    table = assign_splits(table[~unlabeled], summary, split_files)
    return prepare(table, partial(_load_cpsc, protocol=protocol), ecg_features(len(CPSC_LABELS)), output_dir,
                   source="cpsc2018", description=dataset_description("cpsc2018", list(CPSC_LABELS),
                                                                      protocol=protocol),
                   config={"source": "cpsc2018", "raw_dir": str(raw_dir), "protocol": protocol,
                           "split_files": split_files, "reference_csv": str(reference_csv)},
                   num_workers=num_workers, shard_size=shard_size, pre_dropped=summary, overwrite=overwrite)


def main(argv=None):
    parser = cli.base_parser("Prepare CPSC2018 (original .mat + REFERENCE.csv, or CinC-2020 WFDB) as a DatasetDict.")
    cli.add_split_arguments(parser)
    parser.add_argument("--reference_csv", help="REFERENCE.csv of the original layout (default raw_dir/REFERENCE.csv)")
    args = parser.parse_args(argv)
    build(args.raw_dir, args.output_dir, args.protocol, cli.split_files_from(args), args.reference_csv,
          args.num_workers, args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)

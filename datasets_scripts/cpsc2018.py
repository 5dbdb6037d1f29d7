"""CPSC 2018 (ICBEB), 9 classes, in either distribution layout.

- Original challenge layout: A0001.mat ... (MATLAB struct `ECG` with fields sex, age, data = 12 x N in mV, leads
  I, II, III, aVR, aVL, aVF, V1-V6) + REFERENCE.csv (Recording, First_label, Second_label, Third_label; 1..9).
- PhysioNet/CinC 2020 layout: A0001.hea (`# Dx:` SNOMED-CT codes) + A0001.mat (`val`, 12 x N int16).
Records are 6-60 s at 500 Hz; the two papers cut them differently (`protocol`, docs/datasets.md):
- "tamer" (default): records of at least 10 s are kept and cut to their first 10 s; shorter ones are dropped and
  counted (TAMER §4.2.1: 6,867 of 6,877 records).
- "merl": MERL's split files and loader as shipped: the first 2,500 samples (5 s) followed by 2,500 zeros, every
  record kept (MERL finetune/finetune_dataset.py, "as METS did"; 6,877 records = 4,950 / 551 / 1,376).
Neither paper drops a record for a flat lead, so neither protocol does (the counts would change).
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from . import cli
from .card import SourceCard
from .common import (DropRecord, LEADS, dataset_description, ecg_features, find_records, header_dx_codes,
                     label_indices, read_wfdb, stamp_split_counts, standardize_signal)
from .log import progress_bar
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv

CPSC_LABELS = ("AFIB", "VPC", "NORM", "1AVB", "CRBBB", "STE", "PAC", "CLBBB", "STD")  # MERL column order
REFERENCE_CODES = {1: "NORM", 2: "AFIB", 3: "1AVB", 4: "CLBBB", 5: "CRBBB", 6: "PAC", 7: "VPC", 8: "STD", 9: "STE"}
# SNOMED-CT codes used for the CPSC classes in the PhysioNet/CinC 2020 headers (with their scored equivalents).
SNOMED_CODES = {
    "426783006": "NORM", "164889003": "AFIB", "270492004": "1AVB", "164909002": "CLBBB", "733534002": "CLBBB",
    "59118001": "CRBBB", "713427006": "CRBBB", "284470004": "PAC", "63593006": "PAC", "164884008": "VPC",
    "427172004": "VPC", "17338001": "VPC", "429622005": "STD", "164931005": "STE",
}
CARD = SourceCard(
    pretty_name="CPSC 2018 (tamer-hf preparation)", license="cc-by-4.0",
    homepage="http://2018.icbeb.org/Challenge.html (also in the PhysioNet/CinC Challenge 2020 data)",
    summary="The China Physiological Signal Challenge 2018: 6,877 12-lead ECGs of 6-60 s at 500 Hz with 9 classes "
            "(normal and 8 abnormalities), multi-label.",
    citation="""@article{liu2018cpsc,
  title = {An Open Access Database for Evaluating the Algorithms of Electrocardiogram Rhythm and Morphology
           Abnormality Detection},
  author = {Liu, Feifei and Liu, Chengyu and Zhao, Lina and Zhang, Xiangyu and Wu, Xiaoling and Xu, Xiaoyan and
            Liu, Yulin and Ma, Caiyun and Wei, Shoushui and He, Zhiqiang and Li, Jianqing and Kwee, Eddie Ng Yin},
  journal = {Journal of Medical Imaging and Health Informatics}, volume = {8}, number = {7}, pages = {1368--1373},
  year = {2018}
}""",
    split_rule="The project split: a hash of the record id (no patient ids in this source), about 80 / 10 / 10 %.",
    tags=["cpsc2018", "icbeb"],
)
PROTOCOLS = ("tamer", "merl")
TAMER_MIN_SECONDS = 10.0  # TAMER §4.2.1: "retain recordings with durations >= 10 seconds and truncate to 10 seconds"
MERL_KEPT_SAMPLES = 2500  # MERL finetune_dataset.py: ecg[:, :2500], then 2,500 zeros appended


def read_reference(path: Path) -> dict[str, list[str]]:
    """REFERENCE.csv -> {record: [label names]} from First/Second/Third_label (1..9)."""
    table = read_csv(path)
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
        signal, names, fs = read_wfdb(task["path"])  # (n_leads, T)
    else:
        signal, names, fs = read_original_mat(Path(task["path"])), LEADS, 500.0
    if protocol == "tamer" and signal.shape[-1] < TAMER_MIN_SECONDS * fs:
        raise DropRecord("shorter than 10 s (protocol tamer keeps records of at least 10 s)")
    ecg = standardize_signal(signal, names, fs, drop_flat_leads=False)  # (12, 5000): first 10 s at 500 Hz
    if protocol == "merl":
        # MERL reads the 500 Hz records as they are and slices 2,500 samples; every CPSC record is 500 Hz, and a
        # record at another rate has been resampled above, so the kept part is always the first 5 s.
        ecg = ecg.copy()
        ecg[:, MERL_KEPT_SAMPLES:] = 0.0
    return {"ecg": ecg, "record_id": task["record_id"], "patient_id": "",
            "labels": label_indices(task["label_names"].split("|"), list(CPSC_LABELS))}


def _records_table(raw_dir: Path, reference_csv, summary: PreparationSummary) -> pd.DataFrame:
    headers = find_records(raw_dir)
    if headers:
        rows = []
        for record in progress_bar(headers, desc="CPSC2018 headers", unit="rec"):
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


def build(raw_dir, output_dir=None, protocol: str = "tamer", split_files=None, reference_csv=None,
          num_workers: int = 2, shard_size: int = 1000, overwrite: bool = False):
    """CPSC2018 as a DatasetDict with the 9 classes, cut as `protocol` says ("tamer" or "merl").

    Split: `split_files` (MERL's icbeb_{train,val,test}.csv, required by "merl"), else the project split by record
    id. The protocol and the records kept per split are stored in preparation_summary.json and in the DatasetInfo
    (`dataset_metadata(dataset)["protocol"]`, `["num_records"]`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (tamer or merl)")
    if protocol == "merl" and not split_files:
        raise ValueError("protocol='merl' is MERL's split and loader: pass split_files train=icbeb_train.csv "
                         "validation=icbeb_val.csv test=icbeb_test.csv (MERL finetune/data_split/icbeb)")
    raw_dir = raw_folder(raw_dir)
    summary = PreparationSummary()
    table = _records_table(raw_dir, reference_csv, summary)
    unlabeled = table["label_names"] == ""
    for record_id in table.loc[unlabeled, "record_id"]:
        summary.drop("no CPSC label", record_id)
    table = assign_splits(table[~unlabeled], summary, split_files)
    output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="tamer_cpsc2018_"))
    prepare(table, partial(_load_cpsc, protocol=protocol), ecg_features(CPSC_LABELS), output_dir,
            source="cpsc2018", description=dataset_description("cpsc2018", list(CPSC_LABELS), protocol=protocol),
            config={"source": "cpsc2018", "raw_dir": str(raw_dir), "protocol": protocol,
                    "split_files": split_files, "reference_csv": str(reference_csv)},
            card=CARD, num_workers=num_workers, shard_size=shard_size, pre_dropped=summary, overwrite=overwrite)
    stamp_split_counts(output_dir, "cpsc2018", protocol=protocol)
    return datasets.load_from_disk(str(output_dir))


def main(argv=None):
    parser = cli.base_parser("Prepare CPSC2018 (original .mat + REFERENCE.csv, or CinC-2020 WFDB) as a DatasetDict.")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="tamer",
                        help="tamer (default): keep records >= 10 s, cut to 10 s; merl: MERL's split and loader, "
                             "first 2,500 samples then zeros (needs --split_files with MERL's icbeb CSVs)")
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV",
                        help="external split, e.g. train=icbeb_train.csv validation=icbeb_val.csv "
                             "test=icbeb_test.csv; records absent from every file are dropped")
    parser.add_argument("--reference_csv", help="REFERENCE.csv of the original layout (default raw_dir/REFERENCE.csv)")
    args = cli.parse_args(parser, argv)
    build(args.raw_dir, args.output_dir, args.protocol, cli.split_files_from(args), args.reference_csv,
          args.num_workers, args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)

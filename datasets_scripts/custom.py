"""Your own ECG-report data, so you can pre-train on it.

Two inputs:
- a table (Parquet file or folder, Arrow file, a `save_to_disk` folder, or a Hub dataset id) with an ECG column
  (12 x T or T x 12, any numeric type), a report column and a sampling rate (a column or one value for all);
- a folder of WFDB records plus a CSV with the columns `record` (path relative to the folder, no extension) and
  `report` (names configurable), optionally `patient_id`.
Lead order is given by `lead_names` for tables (default canonical) and read from the headers for WFDB.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .card import SourceCard
from .common import (LEADS, DropRecord, dataset_description, ecg_features, read_wfdb, standardize_signal)
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv


def _card(origin: str) -> SourceCard:
    return SourceCard(pretty_name="Custom ECG-report corpus (tamer-hf preparation)", license="unknown",
                      homepage=None, citation=None,
                      summary=f"ECG-report pairs prepared from `{origin}`. Set the licence and citation of your data "
                              "in this card before sharing it.",
                      split_rule="The project split: a hash of the patient id (the record id where there is none): "
                                 "about 80 / 10 / 10 %, every record of a patient in one split.")


def _without_progress_bars(load, *args, **kwargs):
    """Call a `datasets` loader without its "Generating train split" bars: reading the raw table is quick, and its
    bars would precede a one-line error about the table's columns."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        return load(*args, **kwargs)
    finally:
        if not was_disabled:
            enable_progress_bars()


def _local_stamp(source: str):
    """(path, size, mtime) of the local file(s) behind `source`, None for a Hub id: a cache key that changes when
    the table is rewritten, so a long-lived process never builds from a stale copy of an edited file."""
    path = Path(source)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files) or None


def open_table(source: str):
    """Parquet / Arrow / save_to_disk folder / Hub id -> one datasets.Dataset (all splits concatenated)."""
    return _open_table(str(source), _local_stamp(str(source)))


@lru_cache(maxsize=2)
def _open_table(source: str, stamp):
    import datasets

    path = Path(source)
    looks_local = path.is_absolute() or path.suffix in (".parquet", ".arrow") or source.startswith(".") \
        or source.count("/") > 1  # a Hub id is "name" or "owner/name"
    if looks_local and not path.exists():
        raise FileNotFoundError(f"{source} does not exist (expected a .parquet/.arrow file, a Parquet folder, "
                                "a save_to_disk folder or a Hub dataset id)")
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        return datasets.concatenate_datasets(list(loaded.values())) if hasattr(loaded, "keys") else loaded
    if path.suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("*.parquet"))
        return _without_progress_bars(datasets.load_dataset, "parquet", data_files=files, split="train")
    if path.exists():
        raise ValueError(f"cannot read {source}: expected a .parquet/.arrow file, a Parquet folder or a "
                         "save_to_disk folder")
    loaded = _without_progress_bars(datasets.load_dataset, source)  # a Hub id
    return datasets.concatenate_datasets(list(loaded.values()))


def channel_first(ecg, num_leads: int) -> np.ndarray:
    """(L, T) or (T, L) -> (L, T); the axis of length `num_leads` is the lead axis."""
    array = np.asarray(ecg, dtype=np.float32)
    if array.ndim != 2:
        raise DropRecord(f"ECG must be 2-D, got shape {array.shape}")
    if array.shape[0] == num_leads:
        return array
    if array.shape[1] == num_leads:
        return array.T
    raise DropRecord(f"ECG shape {array.shape} has no axis of {num_leads} leads")


@lru_cache(maxsize=2)
def _numpy_view(source: str, stamp):
    return _open_table(source, stamp).with_format("numpy")


def _load_table_row(task: dict, source: str, stamp, ecg_column: str, lead_names: tuple, units_per_mv: float) -> dict:
    ecg = channel_first(_numpy_view(source, stamp)[int(task["row"])][ecg_column], len(lead_names)) / units_per_mv
    return {"ecg": standardize_signal(ecg, lead_names, task["fs"]), "record_id": task["record_id"],
            "patient_id": task["patient_id"], "report": task["report"]}


def _load_wfdb_row(task: dict) -> dict:
    signal, names, fs = read_wfdb(task["path"])
    return {"ecg": standardize_signal(signal, names, fs), "record_id": task["record_id"],
            "patient_id": task["patient_id"], "report": task["report"]}


def _text(values) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in values]


def _drop_empty_reports(table: pd.DataFrame, summary: PreparationSummary) -> pd.DataFrame:
    empty = table["report"] == ""
    for record_id in table.loc[empty, "record_id"]:
        summary.drop("empty report", record_id)
    return table[~empty]


def build_from_table(source, output_dir=None, ecg_column: str = "ecg", report_column: str = "report",
                     sampling_rate: float | None = None, sampling_rate_column: str | None = None,
                     lead_names=LEADS, id_column: str | None = None, patient_column: str | None = None,
                     units_per_mv: float = 1.0, split_files=None, num_workers: int = 2, shard_size: int = 1000,
                     overwrite: bool = False):
    """Table with ECG + report columns -> DatasetDict in the project's contract (500 Hz, canonical leads, mV)."""
    source = str(source)
    stamp = _local_stamp(source)
    table_data = _open_table(source, stamp)
    columns = table_data.column_names
    for name in [ecg_column, report_column, sampling_rate_column, id_column, patient_column]:
        if name is not None and name not in columns:
            raise ValueError(f"column {name!r} not found in {source} (columns: {', '.join(columns)})")
    if (sampling_rate is None) == (sampling_rate_column is None):
        raise ValueError("give exactly one of sampling_rate (a number) or sampling_rate_column")
    count = len(table_data)
    table = pd.DataFrame({
        "row": np.arange(count),
        "record_id": _text(table_data[id_column]) if id_column else [f"row-{i}" for i in range(count)],
        "patient_id": _text(table_data[patient_column]) if patient_column else "",
        "report": [r.lower() for r in _text(table_data[report_column])],
        "fs": list(table_data[sampling_rate_column]) if sampling_rate_column else float(sampling_rate),
    })
    summary = PreparationSummary()
    table = assign_splits(_drop_empty_reports(table, summary), summary, split_files)
    loader = partial(_load_table_row, source=source, stamp=stamp, ecg_column=ecg_column, lead_names=tuple(lead_names),
                     units_per_mv=units_per_mv)
    return prepare(table, loader, ecg_features(None, with_report=True), output_dir, source="custom",
                   description=dataset_description("custom", [], origin=source), pre_dropped=summary,
                   card=_card(source),
                   config={"source": "custom", "table": source, "ecg_column": ecg_column, "lead_names": lead_names,
                           "report_column": report_column, "sampling_rate": sampling_rate,
                           "sampling_rate_column": sampling_rate_column, "split_files": split_files},
                   num_workers=num_workers, shard_size=shard_size, overwrite=overwrite)


def build_from_wfdb(wfdb_dir, reports_csv, output_dir=None, record_column: str = "record",
                    report_column: str = "report", patient_column: str | None = "patient_id", split_files=None,
                    num_workers: int = 2, shard_size: int = 1000, overwrite: bool = False):
    """Folder of WFDB records + CSV of reports -> DatasetDict."""
    wfdb_dir = raw_folder(wfdb_dir, "WFDB folder")
    if not Path(reports_csv).is_file():
        raise FileNotFoundError(f"reports CSV not found: {reports_csv}")
    reports = read_csv(reports_csv, dtype=str)
    for name in (record_column, report_column):
        if name not in reports.columns:
            raise ValueError(f"{Path(reports_csv).name} lacks column {name!r} (columns: {', '.join(reports.columns)})")
    has_patient = patient_column is not None and patient_column in reports.columns
    table = pd.DataFrame({
        "record_id": _text(reports[record_column]),
        "path": [str(wfdb_dir / r) for r in _text(reports[record_column])],
        "patient_id": _text(reports[patient_column]) if has_patient else "",
        "report": [r.lower() for r in _text(reports[report_column])],
    })
    summary = PreparationSummary()
    table = assign_splits(_drop_empty_reports(table, summary), summary, split_files)
    return prepare(table, _load_wfdb_row, ecg_features(None, with_report=True), output_dir, source="custom",
                   description=dataset_description("custom", [], origin=str(wfdb_dir)), pre_dropped=summary,
                   card=_card(str(wfdb_dir)),
                   config={"source": "custom", "wfdb_dir": str(wfdb_dir), "reports_csv": str(reports_csv),
                           "split_files": split_files},
                   num_workers=num_workers, shard_size=shard_size, overwrite=overwrite)


def main(argv=None):
    parser = cli.base_parser("Prepare your own ECG + report data (table or WFDB folder + CSV) as a DatasetDict.")
    parser.add_argument("--reports_csv", help="WFDB mode: CSV with record and report columns")
    parser.add_argument("--ecg_column", default="ecg")
    parser.add_argument("--report_column", default="report")
    parser.add_argument("--record_column", default="record", help="WFDB mode: record path column")
    parser.add_argument("--sampling_rate", type=float, help="table mode: one sampling rate for every row")
    parser.add_argument("--sampling_rate_column", help="table mode: column holding each row's sampling rate")
    parser.add_argument("--lead_names", nargs="+", default=list(LEADS), help="table mode: lead order of the ECGs")
    parser.add_argument("--id_column")
    parser.add_argument("--patient_column")
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV")
    args = cli.parse_args(parser, argv)
    common = dict(split_files=cli.split_files_from(args), num_workers=args.num_workers,
                  shard_size=args.shard_size, overwrite=args.overwrite)
    if args.reports_csv:
        build_from_wfdb(args.raw_dir, args.reports_csv, args.output_dir, args.record_column, args.report_column,
                        args.patient_column or "patient_id", **common)
    else:
        build_from_table(args.raw_dir, args.output_dir, args.ecg_column, args.report_column, args.sampling_rate,
                         args.sampling_rate_column, args.lead_names, args.id_column, args.patient_column, **common)


if __name__ == "__main__":
    cli.run(main)

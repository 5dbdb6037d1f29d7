"""Signal conventions shared by every builder: lead order, 500 Hz, 10 s, record cleaning, splits, label metadata.

Each helper here exists once; the per-source modules only know their raw layout and their label table. The signal
helpers themselves (lead matching, resampling, NaN/Inf interpolation, crop/pad, WFDB units) are the feature
extractor's (`tamer_hf.modeling.feature_extraction_tamer`); this module adds the builders' policies around them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import Array2D, ClassLabel, Features, List, Value

from tamer_hf.modeling import ecg_wfdb
from tamer_hf.modeling.configuration_tamer import CANONICAL_LEADS
from tamer_hf.modeling.feature_extraction_tamer import (UNIT_TO_MV, crop_or_pad, interpolate_non_finite, lead_rows,
                                                        resample_to_rate)

from .log import get_logger

logger = get_logger(__name__)

LEADS = tuple(CANONICAL_LEADS)  # the model's lead order, one definition for the whole project
TARGET_FS = 500  # Hz, the model's input rate (SPEC §3)
TARGET_LEN = 5000  # samples = 10 s at 500 Hz
SPLITS = ("train", "validation", "test")

# Record-cleaning rule (documented in docs/datasets.md): up to this fraction of non-finite samples in a lead is
# repaired by linear interpolation; more is a dropped record.
MAX_NONFINITE_FRACTION = 0.01
FLAT_LEAD_PTP_MV = 1e-4  # a lead whose peak-to-peak range is below this is "flat" (no signal)


class DropRecord(Exception):
    """Raised inside a record loader; the message is the reason counted in the preparation summary."""


# ----------------------------------------------------------------------------------------------------------------
# features and label metadata
# ----------------------------------------------------------------------------------------------------------------
def label_feature(label_list) -> List:
    """Multi-label column: each row lists the indices of its classes; the ordered class names live in the Features.

    `List(ClassLabel(names=...))` is what the Hub uses for multi-label data: the names travel with the Arrow schema
    metadata into `save_to_disk`, `to_parquet` (read back by `load_dataset("parquet")`) and `push_to_hub`'s YAML,
    where a description string is dropped.
    """
    return List(ClassLabel(names=list(label_list)))


def ecg_features(label_list=None, with_report: bool = False, signal_dtype: str = "float32") -> Features:
    """The data contract: `ecg` (12, 5000) mV, ids, optional `report`, optional `labels` over `label_list`."""
    if signal_dtype not in ("float32", "float16"):
        raise ValueError(f"signal_dtype must be 'float32' or 'float16', got {signal_dtype!r}")
    columns = {
        "ecg": Array2D(shape=(len(LEADS), TARGET_LEN), dtype=signal_dtype),
        "record_id": Value("string"),
        "patient_id": Value("string"),
    }
    if with_report:
        columns["report"] = Value("string")
    if label_list:
        columns["labels"] = label_feature(label_list)
    return Features(columns)


def ecg_arrow_table(signals: np.ndarray, columns: dict, features: Features):
    """A pyarrow Table in `features`' schema whose `ecg` column is `signals` (N, 12, T) itself, not a copy.

    Going through `Dataset.from_dict` or `ArrowWriter.write(row)` turns each record into Python lists or per-row
    arrays first: several times the signal's size in memory and most of the preparation time. Here the signal
    becomes Arrow list arrays over the same buffer; only the small columns (`columns`: name -> list) are encoded.
    """
    import pyarrow as pa

    count, leads, length = signals.shape
    values = pa.array(np.ascontiguousarray(signals).reshape(-1))  # zero-copy view of float32 / float16 samples
    rows = pa.ListArray.from_arrays(pa.array(np.arange(0, count * leads * length + 1, length, dtype=np.int64)),
                                    values)  # (N * 12) lead rows
    records = pa.ListArray.from_arrays(pa.array(np.arange(0, count * leads + 1, leads, dtype=np.int64)), rows)
    ecg = pa.ExtensionArray.from_storage(features["ecg"](), records.cast(features["ecg"]().storage_type))
    others = Features({name: feature for name, feature in features.items() if name != "ecg"})
    small = pa.Table.from_pydict(others.encode_batch(columns), schema=others.arrow_schema)
    arrays = {name: (ecg if name == "ecg" else small.column(name)) for name in features}
    return pa.table(arrays, schema=features.arrow_schema)


def in_memory_split(signals: np.ndarray, columns: dict, features: Features, description: str, fingerprint: str):
    """A Dataset held in memory whose `ecg` column is `signals` (N, 12, T) itself, not a copy.

    A Dataset built without a fingerprint hashes its whole table to make one (4,000 records: 1 GB of signal, 5.8 GB
    peak with `from_dict`); `fingerprint` (which must name everything the data depends on) is given.
    """
    from datasets import Dataset, DatasetInfo
    from datasets.table import InMemoryTable

    table = ecg_arrow_table(signals, columns, features)
    return Dataset(InMemoryTable(table), info=DatasetInfo(description=description, features=features),
                   fingerprint=fingerprint)


def dataset_description(source: str, label_list: list[str] | None, **extra) -> str:
    """JSON stored in `DatasetInfo.description`: source, protocol and signal facts (labels are in the Features)."""
    meta = {"tamer_source": source, "label_names": list(label_list or []), "sampling_rate": TARGET_FS,
            "leads": list(LEADS), "units": "mV"}
    meta.update(extra)
    return json.dumps(meta)


def dataset_metadata(dataset) -> dict:
    """The metadata dict written by the builders, from a `Dataset` or `DatasetDict`."""
    split = _first_split(dataset)
    try:
        return json.loads(split.info.description or "")
    except json.JSONDecodeError:
        raise ValueError("this dataset was not written by datasets_scripts (no builder metadata in its info)") from None


def _first_split(dataset):
    return dataset[next(iter(dataset))] if hasattr(dataset, "keys") else dataset


def stamp_split_counts(output_dir, source: str, **fields) -> dict[str, int]:
    """After preparation: add `fields` (e.g. protocol) and the records kept per split (`num_records`) to
    preparation_summary.json and to every split's `DatasetInfo.description`, and log them.

    An evaluation reads them back with `dataset_metadata(dataset)` to record which protocol built the data.
    """
    from datasets import DatasetInfo

    from .prepare import SUMMARY  # prepare.py imports this module: import here, not at the top

    output_dir = Path(output_dir)
    summary = json.loads((output_dir / SUMMARY).read_text())
    counts = {split: int(summary["kept"].get(split, 0)) for split in SPLITS}
    summary.update(fields, num_records=counts)
    (output_dir / SUMMARY).write_text(json.dumps(summary, indent=1))
    for split in SPLITS:
        info = DatasetInfo.from_directory(str(output_dir / split))
        info.description = json.dumps({**json.loads(info.description), **fields, "num_records": counts})
        info.write_to_directory(str(output_dir / split))
    settings = ", ".join(f"{key}={value}" for key, value in fields.items())
    logger.info(f"[{source}] {settings}: " + ", ".join(f"{split}={counts[split]}" for split in SPLITS)
                + f" records (total {sum(counts.values())})")
    return counts


def label_names(dataset) -> list[str]:
    """Ordered class names of the `labels` column of a `Dataset` or `DatasetDict` ([] when there is none).

    Read from the Features (`List(ClassLabel)`); a folder prepared before labels moved there (multi-hot int8 with the
    names in `DatasetInfo.description`) still reads. A `labels` column whose names are nowhere is an error: scoring
    it by position would be silently wrong.
    """
    split = _first_split(dataset)
    feature = split.features.get("labels")
    if feature is None:
        return []
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    try:
        names = dataset_metadata(split).get("label_names") or []
    except ValueError:
        names = []
    width = getattr(feature, "length", -1)
    if not names or len(names) != width:
        raise ValueError(
            f"the `labels` column ({feature}) carries no class names: store it as "
            "datasets.List(datasets.ClassLabel(names=[...])), what every datasets_scripts builder writes (prepare the "
            "data again, or convert multi-hot rows with datasets_scripts.common.upgrade_labels(split, names=[...]))"
        )
    return list(names)


def multi_hot_labels(dataset) -> np.ndarray:
    """(N, C) int8 multi-hot matrix of the `labels` column, columns in `label_names(dataset)` order."""
    names = label_names(dataset)
    if not isinstance(getattr(dataset.features["labels"], "feature", None), ClassLabel):  # an old multi-hot folder
        return np.asarray(dataset.with_format("numpy")["labels"], dtype=np.int8).reshape(len(dataset), len(names))
    column = dataset.with_format("arrow")["labels"].combine_chunks()  # the label lists only, never the ECGs
    matrix = np.zeros((len(dataset), len(names)), dtype=np.int8)  # (N, C)
    matrix[pc.list_parent_indices(column).to_numpy(), pc.list_flatten(column).to_numpy()] = 1
    return matrix


def upgrade_labels(dataset, names: list[str] | None = None):
    """A split with multi-hot `labels` -> the same split with `labels` as `List(ClassLabel(names))`; a split that
    already has class names is returned as it is. `names`: the classes of the multi-hot columns, in order; default:
    those a folder prepared before the names moved into the Features keeps in its description."""
    feature = dataset.features.get("labels")
    if feature is None or isinstance(getattr(feature, "feature", None), ClassLabel):
        return dataset
    matrix = np.asarray(dataset.with_format("numpy")["labels"], dtype=np.int8)  # (N, C) multi-hot
    names = list(names) if names is not None else label_names(dataset)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"{len(names)} class names for multi-hot labels of shape {matrix.shape}")
    indices = [np.flatnonzero(row).tolist() for row in matrix]
    return dataset.remove_columns("labels").add_column("labels", indices, feature=label_feature(names))


def label_indices(names, label_list) -> list[int]:
    """Class names -> sorted indices into `label_list` (the `labels` value of one row); names outside `label_list`
    are ignored by design (callers count them)."""
    index = {name: i for i, name in enumerate(label_list)}
    return sorted({index[name] for name in names if name in index})


# ----------------------------------------------------------------------------------------------------------------
# signal conventions: the builders' policies around the feature extractor's signal helpers (one copy of each)
# ----------------------------------------------------------------------------------------------------------------
def reorder_leads(signal: np.ndarray, lead_names) -> np.ndarray:
    """(n_leads, T) in the record's order -> (12, T) in LEADS order, matching leads by name (fixes MIMIC's aVF/aVL);
    other leads are ignored, a missing one drops the record."""
    return signal[_canonical_rows(tuple(lead_names))]


@functools.lru_cache(maxsize=256)
def _canonical_rows(lead_names: tuple) -> list[int]:
    """Record rows in LEADS order; cached: a corpus has a handful of lead orders, and matching names costs more
    than reading a record."""
    rows = lead_rows(lead_names, LEADS)
    missing = [lead for target, lead in enumerate(LEADS) if target not in rows]
    if missing:
        raise DropRecord(f"missing leads {','.join(missing)}")
    return [rows[target] for target in range(len(LEADS))]


def resample_to_target(signal: np.ndarray, fs: float) -> np.ndarray:
    """(12, T) at `fs` -> (12, T * 500 / fs) by polyphase filtering; no-op at 500 Hz."""
    if fs <= 0:
        raise DropRecord(f"invalid sampling rate {fs}")
    if fs == TARGET_FS:
        return signal
    return resample_to_rate(signal, fs, TARGET_FS).astype(np.float32, copy=False)


def fit_length(signal: np.ndarray, length: int = TARGET_LEN, anchor: str = "start") -> np.ndarray:
    """Crop or zero-pad the time axis to `length`; `anchor='center'` keeps the middle (CODE pads both sides)."""
    return crop_or_pad(signal, length, anchor)


def repair_nonfinite(signal: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN/Inf runs per lead, or DropRecord when a lead is more than 1% non-finite."""
    bad = ~np.isfinite(signal)
    if bad.any() and bad.mean(axis=1).max() > MAX_NONFINITE_FRACTION:
        raise DropRecord("non-finite samples (NaN/Inf) beyond the 1% repair limit")
    return interpolate_non_finite(signal)


def standardize_signal(signal: np.ndarray, lead_names, fs: float, anchor: str = "start",
                       drop_flat_leads: bool = True) -> np.ndarray:
    """Raw (n_leads, T) in mV -> cleaned (12, 5000) float32 in canonical order at 500 Hz, or DropRecord.

    `drop_flat_leads=False` keeps records with a flat lead: a paper protocol that drops nothing for that
    (CPSC2018 under MERL/TAMER) must keep its record count.
    """
    if signal.ndim != 2 or signal.shape[1] < 2:
        raise DropRecord(f"unexpected signal shape {signal.shape}")
    signal = reorder_leads(signal.astype(np.float32, copy=False), lead_names)  # (12, T)
    if not np.isfinite(signal.sum()):  # one pass without a mask; the sum of finite samples overflows only for junk
        signal = repair_nonfinite(signal)
    signal = fit_length(resample_to_target(signal, fs), TARGET_LEN, anchor)  # (12, 5000)
    if drop_flat_leads and (signal.max(axis=1) - signal.min(axis=1) < FLAT_LEAD_PTP_MV).any():
        raise DropRecord("flat lead (no signal)")
    return np.ascontiguousarray(signal, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# WFDB reading: `ecg_wfdb` (numpy for one-file format 16/212/32/80, wfdb.rdsamp otherwise), with the builders' drops
# ----------------------------------------------------------------------------------------------------------------
def read_wfdb(record_path) -> tuple[np.ndarray, list[str], float]:
    """WFDB record (path without extension) -> (signal (n_leads, T) float32 mV with NaN for missing, names, fs);
    DropRecord naming what is wrong with a broken record."""
    record_path = os.fspath(record_path)
    if not os.path.isfile(record_path + ".hea"):
        raise DropRecord("missing header file")
    try:
        record = ecg_wfdb.read_record(record_path)
    except FileNotFoundError:
        raise DropRecord("missing signal file") from None
    except ecg_wfdb.TruncatedSignalFile:
        raise DropRecord("truncated signal file") from None
    except ecg_wfdb.HeaderError:
        raise DropRecord("unreadable header") from None
    except Exception as error:  # wfdb raises many types on broken files; the reason is what matters here
        raise DropRecord(f"unreadable WFDB record ({type(error).__name__})") from None
    signal = record.signal
    scale = [UNIT_TO_MV.get(unit.lower(), 1.0) for unit in record.units]
    if any(factor != 1.0 for factor in scale):
        signal *= np.asarray(scale, dtype=np.float32)[:, None]
    return signal, record.names, record.fs


def header_comments(record_path) -> list[str]:
    """The `# ...` lines of a WFDB header, without the '#'."""
    header_path = Path(str(record_path) + ".hea")
    return [ln.strip().lstrip("#").strip() for ln in header_path.read_text(errors="replace").splitlines()
            if ln.strip().startswith("#")]


# ----------------------------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------------------------
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def deterministic_split(group_id: str, fractions=DEFAULT_FRACTIONS, salt: str = "tamer") -> str:
    """Split of a patient (or record when no patient id exists) from a hash of its id: order-free and stable.

    Every record of one patient lands in the same split, so the split is patient-level wherever ids exist.
    """
    digest = hashlib.sha1(f"{salt}:{group_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    train, validation, _ = fractions
    if position < train:
        return "train"
    return "validation" if position < train + validation else "test"


_SPLIT_ALIASES = {"train": "train", "val": "validation", "valid": "validation", "validation": "validation",
                  "test": "test"}


def record_id_from_split_row(row: dict) -> str:
    """Record id of one row of an external split CSV (MERL layouts: ecg_id, filename or ecg_path)."""
    if "filename" in row and isinstance(row["filename"], str):
        return Path(row["filename"]).stem  # ICBEB: A0001
    if "ecg_path" in row and isinstance(row["ecg_path"], str):
        return Path(row["ecg_path"]).stem  # Chapman: /chapman/WFDBRecords/18/186/JS18048.mat
    if "ecg_id" in row:
        return str(int(float(row["ecg_id"])))  # PTB-XL
    if "record_id" in row:
        return str(row["record_id"])
    raise ValueError(f"split file row has none of the id columns ecg_id, filename, ecg_path, record_id: {list(row)}")


def read_split_files(split_files: dict) -> dict[str, str]:
    """{split: csv_path} -> {record_id: split}, matched by record id (never by row position)."""
    import pandas as pd

    membership = {}
    for split, path in split_files.items():
        split_name = _SPLIT_ALIASES.get(split)
        if split_name is None:
            raise ValueError(f"unknown split name {split!r} (use train, validation or test)")
        if not Path(path).is_file():
            raise FileNotFoundError(f"split file not found: {path}")
        table = pd.read_csv(path, skip_blank_lines=True)
        id_columns = [c for c in ("filename", "ecg_path", "ecg_id", "record_id") if c in table.columns]
        if not id_columns:
            raise ValueError(f"{path}: no id column (expected one of ecg_id, filename, ecg_path, record_id)")
        for row in table[id_columns].to_dict("records"):
            membership[record_id_from_split_row(row)] = split_name
    return membership


def parse_split_files_argument(items) -> dict | None:
    """CLI `--split_files train=a.csv validation=b.csv test=c.csv` -> dict."""
    if not items:
        return None
    result = {}
    for item in items:
        split, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--split_files expects SPLIT=PATH items, got {item!r}")
        result[split] = path
    return result


def file_fingerprint(paths) -> str:
    """Hash of (path, size, mtime) of raw files: a change in the raw data gives a different preparation id."""
    digest = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def header_dx_codes(record_path) -> list[str]:
    """SNOMED-CT codes of the `# Dx: 164889003,59118001` header line (PhysioNet/CinC layout), as exact tokens."""
    for comment in header_comments(record_path):
        key, sep, value = comment.partition(":")
        if sep and key.strip().lower() == "dx":
            return [code.strip() for code in value.split(",") if code.strip()]
    return []


def find_records(raw_dir: Path, pattern: str = "*.hea") -> list[Path]:
    """Record paths (header path without the .hea suffix) under raw_dir, sorted for a deterministic order."""
    return sorted(path.with_suffix("") for path in Path(raw_dir).rglob(pattern))

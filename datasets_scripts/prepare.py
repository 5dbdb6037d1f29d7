"""The one preparation engine every builder uses: parallel record loading, Arrow shards, manifest, resume, summary.

The output folder is exactly what `DatasetDict.save_to_disk` writes (dataset_dict.json, <split>/state.json,
<split>/dataset_info.json, <split>/*.arrow), so `datasets.load_from_disk(output_dir)` reads it; but the shards are
written one at a time while records stream through worker processes, so memory stays flat whatever the corpus size,
and a manifest of finished shards lets an interrupted run skip them on the next call.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import datasets
import numpy as np
from datasets import DatasetInfo
from datasets.arrow_writer import ArrowWriter
from .card import SourceCard, write_dataset_card
from .common import DEFAULT_FRACTIONS, SPLITS, DropRecord, deterministic_split, ecg_arrow_table, read_split_files
from .log import get_logger, progress_bar

logger = get_logger(__name__)

MANIFEST = "prepare_manifest.json"
SUMMARY = "preparation_summary.json"
EXAMPLES_PER_REASON = 20  # record ids kept per drop reason in the summary
ARROW_BATCH = 128  # records per Arrow record batch: 31 MB of float32 signal held per split while a shard is written


class PreparationSummary:
    """Counts of kept records per split and of dropped records per reason (with a few example ids)."""

    def __init__(self):
        self.kept = Counter()
        self.dropped = Counter()
        self.examples = defaultdict(list)
        self.notes = Counter()  # things kept but worth knowing, e.g. unmapped SNOMED codes

    def drop(self, reason: str, record_id: str, count: int = 1):
        self.dropped[reason] += count
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(str(record_id))

    def merge(self, other: dict):
        self.kept.update(other.get("kept", {}))
        for reason, count in other.get("dropped", {}).items():
            self.dropped[reason] += count
            room = EXAMPLES_PER_REASON - len(self.examples[reason])
            self.examples[reason].extend(other.get("examples", {}).get(reason, [])[:max(room, 0)])
        self.notes.update(other.get("notes", {}))

    def to_dict(self) -> dict:
        return {"kept": dict(self.kept), "dropped": dict(self.dropped), "examples": dict(self.examples),
                "notes": dict(self.notes)}

    def report(self, source: str) -> str:
        lines = [f"[{source}] kept {sum(self.kept.values())} records: "
                 + ", ".join(f"{split}={self.kept.get(split, 0)}" for split in SPLITS)]
        lines.append(f"[{source}] dropped {sum(self.dropped.values())} records"
                     + (":" if self.dropped else ""))
        for reason, count in self.dropped.most_common():
            shown = ", ".join(self.examples[reason][:5])
            lines.append(f"  {count:>8}  {reason}  (e.g. {shown})")
        for note, count in self.notes.most_common(20):
            lines.append(f"  note: {count:>8}  {note}")
        return "\n".join(lines)


def assign_splits(table, summary: PreparationSummary, split_files: dict | None = None,
                  fractions=DEFAULT_FRACTIONS, fixed_split=None):
    """Add the `split` column: an external split file (by record id), a fixed per-row split, or the project's
    deterministic hash split of patient_id (record_id where the patient is unknown). Unmatched rows are dropped."""
    if split_files:
        membership = read_split_files(split_files)
        table = table.assign(split=table["record_id"].map(membership))
    elif fixed_split is not None:
        table = table.assign(split=fixed_split)
    else:
        groups = table["patient_id"].where(table["patient_id"].astype(bool), table["record_id"])
        table = table.assign(split=[deterministic_split(g, fractions) for g in groups])
    missing = table["split"].isna()
    for record_id in table.loc[missing, "record_id"]:
        summary.drop("not in the external split files", record_id)
    return table[~missing].reset_index(drop=True)


def _load_one(loader, task):
    """(loader, task) -> ('ok', split, row) or ('drop', reason, record_id). Never raises on bad records."""
    try:
        return "ok", task["split"], loader(task)
    except DropRecord as reason:
        return "drop", str(reason), task["record_id"]
    except (OSError, ValueError, EOFError, KeyError, IndexError) as error:
        return "drop", f"unreadable record ({type(error).__name__})", task["record_id"]


def _read_manifest(output_dir: Path, config: dict, overwrite: bool) -> dict:
    manifest_path = output_dir / MANIFEST
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"output_dir {output_dir} is a file, not a folder: choose a new or empty folder")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not manifest_path.is_file():
            raise FileExistsError(f"output_dir {output_dir} is not empty and holds no preparation manifest; "
                                  "choose an empty or new folder")
        manifest = json.loads(manifest_path.read_text())
        if overwrite or manifest["config"] != config:
            if not overwrite:
                raise FileExistsError(f"output_dir {output_dir} holds a preparation with different settings; "
                                      "pass --overwrite (overwrite=True) to start again or choose another folder")
            shutil.rmtree(output_dir)
        else:
            return manifest
    output_dir.mkdir(parents=True, exist_ok=True)
    return {"config": config, "shards": {}}


def _write_manifest(output_dir: Path, manifest: dict):
    partial = output_dir / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=1))
    os.replace(partial, output_dir / MANIFEST)  # atomic: a kill leaves the old or the new manifest, never half


class _SplitShardWriter:
    """One split's Arrow file of one shard, written ARROW_BATCH records at a time from a reused signal buffer."""

    def __init__(self, path: Path, features):
        self.path, self.features = path, features
        self.writer = ArrowWriter(features=features, path=str(path))
        ecg = features["ecg"]
        self.signals = np.empty((ARROW_BATCH, *ecg.shape), dtype=ecg.dtype)  # (B, 12, 5000): the one float cast
        self.columns = {name: [] for name in features if name != "ecg"}
        self.count = 0

    def add(self, row: dict):
        self.signals[self.count] = row["ecg"]
        for name, values in self.columns.items():
            values.append(row[name])
        self.count += 1
        if self.count == ARROW_BATCH:
            self.flush()

    def flush(self):
        if self.count:
            self.writer.write_table(ecg_arrow_table(self.signals[: self.count], self.columns, self.features))
        self.columns = {name: [] for name in self.columns}
        self.count = 0

    def close(self):
        self.flush()
        self.writer.finalize()
        self.writer.close()
        os.replace(self.path, self.path.with_suffix(""))  # shard-NNNNN.arrow.partial -> shard-NNNNN.arrow


def _write_shard(job) -> tuple[int, dict]:
    """Worker: load one shard's records and write one Arrow file per split; returns (shard index, its summary).

    A whole shard per worker: records never travel between processes, so the workers scale and the parent only
    keeps the manifest."""
    loader, tasks, shard_index, output_dir, features = job
    summary = PreparationSummary()
    writers = {}
    for task in tasks:
        status, key, value = _load_one(loader, task)
        if status == "drop":
            summary.drop(key, value)
            continue
        if key not in writers:
            (output_dir / key).mkdir(exist_ok=True)
            writers[key] = _SplitShardWriter(output_dir / key / f"shard-{shard_index:05d}.arrow.partial", features)
        writers[key].add(value)
        summary.kept[key] += 1
    for writer in writers.values():
        writer.close()
    return shard_index, summary.to_dict()


def _finalize_split(split_dir: Path, features, description: str):
    """Write state.json + dataset_info.json (the save_to_disk layout) for the split's finished shards."""
    split_dir.mkdir(exist_ok=True)
    shards = sorted(p.name for p in split_dir.glob("shard-*.arrow"))
    if not shards:  # an empty split still loads: one schema-only shard
        writer = ArrowWriter(features=features, path=str(split_dir / "shard-empty.arrow"))
        writer.finalize()
        writer.close()
        shards = ["shard-empty.arrow"]
    DatasetInfo(description=description, features=features).write_to_directory(str(split_dir))
    state = {"_data_files": [{"filename": name} for name in shards], "_fingerprint": None,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": split_dir.name}
    (split_dir / "state.json").write_text(json.dumps(state, indent=2))


def prepare(tasks_table, loader, features, output_dir, *, source: str, description: str, config: dict,
            card: SourceCard, num_workers: int = 2, shard_size: int = 1000,
            pre_dropped: PreparationSummary | None = None, overwrite: bool = False,
            stop_after_shards: int | None = None):
    """Load every task row with `loader` in `num_workers` processes and write the DatasetDict to `output_dir`.

    tasks_table: pandas DataFrame, one row per record, with at least `record_id` and `split` plus whatever the
    loader needs; rows are cut into shards of `shard_size` in table order. `loader(task_dict) -> row dict` raises
    DropRecord for bad records. `config` identifies the preparation: a rerun with the same config resumes.
    `card`: the source's facts for the README.md dataset card written next to the data.
    `stop_after_shards` simulates an interruption (tests, benchmarks). Returns `load_from_disk(output_dir)`.
    """
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    if output_dir is None:
        output_dir = tempfile.mkdtemp(prefix=f"tamer_{source}_")
    output_dir = Path(output_dir)
    config = json.loads(json.dumps({**config, "shard_size": shard_size, "num_records": len(tasks_table),
                                    "features": features.to_dict()}, default=str))
    manifest = _read_manifest(output_dir, config, overwrite)
    num_shards = max(1, -(-len(tasks_table) // shard_size))
    done = {int(k) for k in manifest["shards"]}
    pending = [index for index in range(num_shards) if index not in done]
    if stop_after_shards is not None:
        pending = pending[:stop_after_shards]
    jobs = ((loader, _records(tasks_table.iloc[index * shard_size:(index + 1) * shard_size]), index, output_dir,
             features) for index in pending)
    done_records = len(tasks_table) - sum(min(shard_size, len(tasks_table) - k * shard_size) for k in pending)
    with _shard_runner(num_workers) as run_shards, progress_bar(total=len(tasks_table), initial=done_records,
                                                                desc=f"{source}", unit="rec") as progress:
        for shard_index, shard_summary in run_shards(_write_shard, jobs):
            manifest["shards"][str(shard_index)] = shard_summary
            _write_manifest(output_dir, manifest)
            progress.update(min(shard_size, len(tasks_table) - shard_index * shard_size))
    if stop_after_shards is not None and len(manifest["shards"]) < num_shards:
        return None
    return finalize(output_dir, features, source, description, manifest, pre_dropped, card)


def _records(frame) -> list[dict]:
    """`frame.to_dict("records")` by columns: pandas 3 boxes each value of an Arrow-backed column one by one."""
    columns = {name: frame[name].tolist() for name in frame.columns}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


@contextlib.contextmanager
def _shard_runner(num_workers: int):
    """`run(function, jobs)` -> results as they finish: a pool of `num_workers` processes, or this process for 0."""
    if num_workers < 1:
        yield map
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with context.Pool(num_workers) as pool:
        yield lambda function, jobs: pool.imap_unordered(function, jobs)


def finalize(output_dir: Path, features, source: str, description: str, manifest: dict,
             pre_dropped: PreparationSummary | None, card: SourceCard):
    summary = PreparationSummary()
    if pre_dropped is not None:
        summary.merge(pre_dropped.to_dict())
    for shard in manifest["shards"].values():
        summary.merge(shard)
    (output_dir / SUMMARY).write_text(json.dumps({"source": source, **summary.to_dict()}, indent=1))
    logger.info(summary.report(source))
    if not sum(summary.kept.values()):  # an empty DatasetDict would look like a successful preparation
        reasons = "; ".join(f"{count} {reason}" for reason, count in summary.dropped.most_common(3))
        raise ValueError(f"[{source}] no record kept: {sum(summary.dropped.values())} record(s) read, all dropped "
                         f"({reasons or 'no record found'}); the reasons and examples are in {output_dir / SUMMARY}")
    for split in SPLITS:
        _finalize_split(output_dir / split, features, description)
    (output_dir / "dataset_dict.json").write_text(json.dumps({"splits": list(SPLITS)}))
    dataset_dict = datasets.load_from_disk(str(output_dir))
    write_dataset_card(output_dir, card, dataset_dict, json.loads(description), summary.to_dict(),
                       manifest["config"].get("split_files"))
    return dataset_dict

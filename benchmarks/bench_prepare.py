"""Data-preparation benchmark: the builders against a plain `wfdb.rdsamp` loop and a bare numpy read of the same files,
per core and at N workers; prepared bytes per record for float32 and float16 storage; peak RSS at 1k vs 10k records.

    python benchmarks/bench_prepare.py [--speed_records 2000 --small 1000 --large 10000 --workers N --workdir DIR]

Raw trees in the PhysioNet layouts, written with `wfdb.wrsamp` (format 16, 10 s at 500 Hz, 12 leads):
- MIMIC-IV-ECG: files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat} (gain 200, aVF before aVL), record_list.csv,
  machine_measurements.csv; built by `datasets_scripts.mimic_iv_ecg.build`.
- PTB-XL: records500/NNNNN/NNNNN_hr.{hea,dat} (gain 1000), ptbxl_database.csv, scp_statements.csv; built by
  `datasets_scripts.ptbxl.build(task="super")`.
`wfdb.wrsamp` costs ~0.1 s a record, so `--templates` distinct records are written with it and each record of the
tree is a copy of one of them under its own name (the header's record and file names replaced).

Like with like, in the same run: each measurement runs in a fresh interpreter over the same records, and its rate
is records per second of wall time, the builder's whole `build()` call included (tables, splits, Arrow files,
dataset card); `*_cpu_ratio` compares records per CPU-second (the process and its workers), steadier when other
work shares the cores. Baselines, each producing the same (12, 5000) float32 array per record and discarding it, as the
builder discards it after writing:
- `rdsamp_loop`: `wfdb.rdsamp(path)[0].T.astype(float32)` per record;
- `numpy_read`: `(np.fromfile(dat, '<i2').reshape(T, 12).T.astype(float32) - baseline) / gain` with gain and
  baseline read once from the first header: the floor cost of the bytes.
Per core: the builder with 1 worker process (the parent only waits for it) against the one-process loops. At N
workers (N = cores available by default): the builder with N workers against the same loops in a
`multiprocessing.Pool(N)`. Prints one JSON object: machine facts, library versions, rates and the ratios.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIMIC_FILE_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
MIMIC_RECORD_COUNT = 800_035  # records in MIMIC-IV-ECG v1.0 record_list.csv (PhysioNet, doi:10.13026/4nqg-sb35)


# ----------------------------------------------------------------------------------------------------------------
# raw trees
# ----------------------------------------------------------------------------------------------------------------
def _write_template(job):
    import wfdb

    folder, name, signal_t12, lead_names, gain = job
    wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=list(lead_names), p_signal=signal_t12, fmt=["16"] * 12,
                adc_gain=[gain] * 12, baseline=[0] * 12, write_dir=str(folder))


def _copy_record(template: Path, record: Path):
    """Template record -> the same samples under another record name (header names replaced, .dat copied)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    old, new = template.name, record.name
    header = template.with_name(old + ".hea").read_text().splitlines()
    header = [line.replace(old, new, 1) if i == 0 or line.startswith(old + ".dat") else line
              for i, line in enumerate(header)]
    record.with_name(new + ".hea").write_text("\n".join(header) + "\n")
    shutil.copyfile(template.with_name(old + ".dat"), record.with_name(new + ".dat"))


def write_tree(layout: str, root: Path, num_records: int, templates: int, workers: int) -> list[str]:
    """A raw tree of `num_records` records in the `layout` ("mimic" or "ptbxl") download layout; returns the record
    paths (without extension) in table order."""
    import pandas as pd

    from datasets_scripts.common import LEADS
    from datasets_scripts.synthetic import iter_records

    root.mkdir(parents=True, exist_ok=True)
    drawn = list(iter_records(templates, seed=0))  # (signal (12, 5000) mV canonical, report, labels)
    lead_names = MIMIC_FILE_LEADS if layout == "mimic" else list(LEADS)
    order = [LEADS.index(name) for name in lead_names]
    gain = 200.0 if layout == "mimic" else 1000.0
    template_dir = root / "templates"
    template_dir.mkdir()
    with Pool(workers) as pool:
        pool.map(_write_template, [(template_dir, f"t{k}", signal[order].T.astype(np.float64), lead_names, gain)
                                   for k, (signal, _, _) in enumerate(drawn)])
    paths, rows, measurements = [], [], []
    for index in range(num_records):
        if layout == "mimic":
            subject_id, study_id = 10000000 + index // 2, 40000000 + index
            relative = f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"
            rows.append({"subject_id": subject_id, "study_id": study_id, "file_name": study_id,
                         "ecg_time": "2180-01-01 00:00:00", "path": relative})
            statements = drawn[index % templates][1].rstrip(".").split(". ")
            measurements.append({"subject_id": subject_id, "study_id": study_id, "cart_id": 1,
                                 **{f"report_{k}": (statements[k] if k < len(statements) else None)
                                    for k in range(18)}})
        else:
            ecg_id = index + 1
            relative = f"records500/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_hr"
            rows.append({"ecg_id": ecg_id, "patient_id": float(20000 + ecg_id // 2), "scp_codes": "{'NORM': 100.0}",
                         "strat_fold": 1 + index % 10,
                         "filename_lr": relative.replace("500", "100").replace("hr", "lr"),
                         "filename_hr": relative})
        _copy_record(template_dir / f"t{index % templates}", root / relative)
        paths.append(str(root / relative))
    if layout == "mimic":
        pd.DataFrame(rows).to_csv(root / "record_list.csv", index=False)
        pd.DataFrame(measurements).to_csv(root / "machine_measurements.csv", index=False)
    else:
        pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
        pd.DataFrame([["NORM", 1, None, None, "NORM", "NORM"]],
                     columns=["", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"]
                     ).to_csv(root / "scp_statements.csv", index=False)
    shutil.rmtree(template_dir)
    return paths


# ----------------------------------------------------------------------------------------------------------------
# measurements, each in a fresh interpreter
# ----------------------------------------------------------------------------------------------------------------
def child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints a JSON dict (peak RSS: the interpreter's VmHWM, which starts
    afresh at exec, and its workers' ru_maxrss)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"})
    if out.returncode:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_tree_in_child(layout: str, root: Path, num_records: int, templates: int, workers: int) -> list[str]:
    """`write_tree` in a fresh interpreter: it imports the project (torch), which this parent process keeps out of
    its memory so that the measured children do not start from its size."""
    code = (f"import json, bench_prepare; print(json.dumps(bench_prepare.write_tree({layout!r}, "
            f"__import__('pathlib').Path({str(root)!r}), {num_records}, {templates}, {workers})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'benchmarks'}", "TQDM_DISABLE": "1"})
    if out.returncode:
        raise RuntimeError(f"writing the raw tree failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


TIMED = """
import json, resource, time
def cpu_seconds():
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)
cpu_before, start = cpu_seconds(), time.perf_counter()
records = run()
seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_before
peak_kib = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"records": records, "seconds": round(seconds, 3), "records_per_s": round(records / seconds, 1),
                  "cpu_seconds": round(cpu, 2), "peak_rss_main_mib": round(peak_kib / 1024, 1),
                  "peak_rss_worker_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}))
"""

BUILD = """
from datasets_scripts import mimic_iv_ecg, ptbxl
def run():
    if {layout!r} == "mimic":
        dataset = mimic_iv_ecg.build({raw!r}, {out!r}, num_workers={workers}, shard_size={shard_size},
                                     signal_dtype={dtype!r})
    else:
        dataset = ptbxl.build({raw!r}, {out!r}, task="super", num_workers={workers}, shard_size={shard_size})
    return sum(len(split) for split in dataset.values())
"""

LOOPS = """
import json, numpy as np, wfdb
from multiprocessing import Pool
paths = json.load(open({paths_file!r}))
header = wfdb.rdheader(paths[0])
gain = np.asarray(header.adc_gain, dtype=np.float32)[:, None]  # (12, 1)
baseline = np.asarray(header.baseline, dtype=np.float32)[:, None]
frames, leads = header.sig_len, header.n_sig

def rdsamp_loop(chunk):
    for path in chunk:
        signal = wfdb.rdsamp(path)[0].T.astype(np.float32)  # (12, 5000)
    return len(chunk)

def numpy_read(chunk):
    for path in chunk:
        signal = (np.fromfile(path + ".dat", dtype="<i2").reshape(frames, leads).T.astype(np.float32) - baseline) / gain
    return len(chunk)

def run():
    if {workers} == 1:
        return {loop}(paths)
    chunks = [paths[k::{workers} * 8] for k in range({workers} * 8)]
    with Pool({workers}) as pool:
        return sum(pool.map({loop}, chunks))
"""


def arrow_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*/*.arrow"))


def ratio(numerator: dict, denominator: dict, per: str = "records_per_s") -> float:
    return round(numerator[per] / denominator[per], 3)


def machine_facts(workers: int) -> dict:
    """Cores, CPU, load and library versions (read from the installed metadata: importing torch here would put its
    memory into every measured child)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"command": " ".join(["python", *sys.argv]), "cores": cores, "workers": workers,
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "versions": {name: installed(name) for name in ("wfdb", "pandas", "numpy", "datasets", "pyarrow", "torch")}}


def speed(layout: str, work: Path, records: int, templates: int, workers: int) -> dict:
    """Rates and ratios of one layout, per core and at `workers` workers."""
    paths = write_tree_in_child(layout, work / f"{layout}_raw", records, templates, workers)
    paths_file = work / f"{layout}_paths.json"
    paths_file.write_text(json.dumps(paths))
    shard_size = max(50, -(-records // (4 * workers)))  # enough shards for every worker
    result = {"records": records, "shard_size": shard_size}
    for count in sorted({1, workers}):
        key = "per_core" if count == 1 else f"workers_{count}"
        runs = {loop: child(LOOPS.format(paths_file=str(paths_file), workers=count, loop=loop) + TIMED)
                for loop in ("rdsamp_loop", "numpy_read")}
        out = work / f"{layout}_out_{count}"
        runs["builder"] = child(BUILD.format(layout=layout, raw=str(work / f"{layout}_raw"), out=str(out),
                                             workers=count, shard_size=shard_size, dtype="float32") + TIMED)
        for run in runs.values():  # CPU time is the steadier measure on a shared machine
            run["records_per_cpu_s"] = round(run["records"] / max(run["cpu_seconds"], 1e-3), 1)
        for baseline in ("rdsamp_loop", "numpy_read"):
            runs[f"builder_vs_{baseline}_ratio"] = ratio(runs["builder"], runs[baseline])
            runs[f"builder_vs_{baseline}_cpu_ratio"] = ratio(runs["builder"], runs[baseline], "records_per_cpu_s")
        result[key] = runs
        shutil.rmtree(out)
    if workers > 1:
        scaled, single = result[f"workers_{workers}"]["builder"], result["per_core"]["builder"]
        result["builder_scaling_workers_over_per_core"] = round(scaled["records_per_s"] / single["records_per_s"], 2)
    return result


def storage(work: Path, workers: int) -> dict:
    """Prepared bytes per record (Arrow files on disk) of the MIMIC layout, float32 and float16 signal storage."""
    raw, records = str(work / "mimic_raw"), len(json.loads((work / "mimic_paths.json").read_text()))
    shard_size = max(50, -(-records // (4 * workers)))
    result = {"records": records, "source_record_count": MIMIC_RECORD_COUNT,
              "source_record_count_from": "MIMIC-IV-ECG v1.0 record_list.csv (PhysioNet)"}
    for dtype in ("float32", "float16"):
        out = work / f"mimic_out_{dtype}"
        result[f"build_{dtype}"] = child(BUILD.format(layout="mimic", raw=raw, out=str(out), workers=workers,
                                                      shard_size=shard_size, dtype=dtype) + TIMED)
        per_record = arrow_bytes(out) / result[f"build_{dtype}"]["records"]
        result[f"bytes_per_record_{dtype}"] = round(per_record)
        result[f"mimic_iv_ecg_total_gb_{dtype}"] = round(per_record * MIMIC_RECORD_COUNT / 1e9, 1)
        shutil.rmtree(out)
    return result


def memory(work: Path, small: int, large: int, templates: int, workers: int) -> dict:
    result = {}
    for size in (small, large):
        write_tree_in_child("mimic", work / f"memory_raw_{size}", size, templates, workers)
        result[f"prepare_{size}"] = child(BUILD.format(layout="mimic", raw=str(work / f"memory_raw_{size}"),
                                                       out=str(work / f"memory_out_{size}"), workers=workers,
                                                       shard_size=1000, dtype="float32") + TIMED)
        shutil.rmtree(work / f"memory_raw_{size}")
        shutil.rmtree(work / f"memory_out_{size}")
    small_run, large_run = result[f"prepare_{small}"], result[f"prepare_{large}"]
    result["peak_rss_main_ratio_large_over_small"] = round(
        large_run["peak_rss_main_mib"] / small_run["peak_rss_main_mib"], 2)
    result["peak_rss_worker_ratio_large_over_small"] = round(
        large_run["peak_rss_worker_mib"] / small_run["peak_rss_worker_mib"], 2)
    return result


def main():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed_records", type=int, default=2000, help="records per layout for the rates")
    parser.add_argument("--small", type=int, default=1000, help="records of the small memory run")
    parser.add_argument("--large", type=int, default=10000, help="records of the large memory run")
    parser.add_argument("--workers", type=int, default=cores, help="N of the N-worker comparison (default: cores)")
    parser.add_argument("--templates", type=int, default=32, help="distinct records written with wfdb.wrsamp")
    parser.add_argument("--layouts", nargs="+", choices=("mimic", "ptbxl"), default=["mimic", "ptbxl"])
    parser.add_argument("--skip_memory", action="store_true", help="leave out the 1k vs 10k peak-RSS runs")
    parser.add_argument("--workdir", default="/tmp/tamer_bench_prepare")
    args = parser.parse_args()

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = {"machine": machine_facts(args.workers)}
    for layout in args.layouts:
        results[f"speed_{layout}"] = speed(layout, work, args.speed_records, args.templates, args.workers)
    if "mimic" in args.layouts:
        results["storage_mimic"] = storage(work, args.workers)
    if not args.skip_memory:
        results["memory_mimic"] = memory(work, args.small, args.large, args.templates, args.workers)
    results["machine"]["load_average_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Data-preparation benchmark: records/s of `datasets_scripts.mimic_iv_ecg.build` (2 workers) against a plain
`wfdb.rdsamp` loop on the same files, and the peak RSS of preparing 1k vs 10k synthetic records in the MIMIC layout.

    python benchmarks/bench_prepare.py [--small 1000 --large 10000 --speed_records 1000 --workdir /tmp/bench]

Prints one JSON object. Each preparation runs in a fresh process so its peak RSS (ru_maxrss of the children:
the parent and its worker processes) is its own.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints a JSON dict; add that process tree's peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_children_mib_upper_bound"] = round(max(peak, before) / 1024, 1)
    return result


PREPARE = """
import json, resource, time
from datasets_scripts import mimic_iv_ecg
start = time.perf_counter()
dataset = mimic_iv_ecg.build({raw!r}, {out!r}, num_workers={workers}, shard_size=1000)
seconds = time.perf_counter() - start
rows = sum(len(s) for s in dataset.values())
self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"records": rows, "seconds": round(seconds, 2), "records_per_s": round(rows / seconds, 1),
                  "peak_rss_main_mib": round(self_kib / 1024, 1), "peak_rss_worker_mib": round(worker_kib / 1024, 1)}}))
"""

RDSAMP_LOOP = """
import json, time, pandas as pd, wfdb
paths = pd.read_csv({raw!r} + "/record_list.csv")["path"].tolist()[:{n}]
start = time.perf_counter()
for path in paths:
    signal, fields = wfdb.rdsamp({raw!r} + "/" + path)
seconds = time.perf_counter() - start
print(json.dumps({{"records": len(paths), "seconds": round(seconds, 2), "records_per_s": round(len(paths) / seconds, 1)}}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--speed_records", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/tamer_bench_prepare")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from datasets_scripts.synthetic import write_mimic_layout

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    results = {"machine": {"cpus": os.cpu_count()}, "workers": args.workers}
    for size in (args.small, args.large):
        start = time.perf_counter()
        write_mimic_layout(work / f"raw{size}", size, seed=0)
        results[f"write_raw_{size}_seconds"] = round(time.perf_counter() - start, 1)

    speed_raw = str(work / f"raw{args.speed_records}") if args.speed_records in (args.small, args.large) else None
    if speed_raw is None:
        write_mimic_layout(work / "raw_speed", args.speed_records, seed=0)
        speed_raw = str(work / "raw_speed")
    results["baseline_wfdb_rdsamp_loop"] = child(RDSAMP_LOOP.format(raw=speed_raw, n=args.speed_records))
    results["prepare_speed"] = child(PREPARE.format(raw=speed_raw, out=str(work / "out_speed"),
                                                    workers=args.workers))
    results["speedup_vs_rdsamp_loop"] = round(results["prepare_speed"]["records_per_s"]
                                              / results["baseline_wfdb_rdsamp_loop"]["records_per_s"], 2)
    for size in (args.small, args.large):
        results[f"prepare_{size}"] = child(PREPARE.format(raw=str(work / f"raw{size}"), out=str(work / f"out{size}"),
                                                          workers=args.workers))
    small, large = results[f"prepare_{args.small}"], results[f"prepare_{args.large}"]
    results["peak_rss_main_ratio_large_over_small"] = round(large["peak_rss_main_mib"] / small["peak_rss_main_mib"], 2)
    results["peak_rss_worker_ratio_large_over_small"] = round(
        large["peak_rss_worker_mib"] / small["peak_rss_worker_mib"], 2)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

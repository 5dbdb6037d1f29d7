"""Peak memory (RSS) of each family's offline quick start, against the size of its ECG signal.

Runs `examples/pretrain.py --model_type F` (the quick start: 4,000 synthetic records generated in memory, its
tokenizer, model, collator, validation and the held-out test) in a child process per family, for `--max_steps`
optimizer steps (memory is reached in the first steps; the rest of the run repeats them), and reads the child's peak
resident set size from `os.wait4`. The reference is the float32 signal of the corpus itself
(records x 12 x 5000 x 4 bytes), which any in-memory run must hold.

    python benchmarks/bench_quickstart_memory.py                     # every family, 30 steps each
    python benchmarks/bench_quickstart_memory.py --families tamer --max_steps 800   # a whole TAMER quick start

Prints one JSON object per family and a summary line; target (issue 15): peak <= 2.5 GB.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_GB = 2.5


def peak_rss_of(command: list[str], env: dict) -> tuple[float, int, float, str]:
    """(peak RSS in GB, exit code, wall seconds, last output lines) of `command` run as a child process."""
    started = time.time()
    with tempfile.TemporaryFile(mode="w+") as log:
        child = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = "".join(log.readlines()[-5:])
    return usage.ru_maxrss * 1024 / 1e9, child.returncode, time.time() - started, tail  # ru_maxrss: KiB on Linux


def main(argv=None):
    sys.path.insert(0, REPO)
    from tamer_hf.families import family_names
    from tamer_hf.training import QUICK_START_RECORDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=family_names(), choices=family_names())
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the child")
    args = parser.parse_args(argv)

    import torch

    signal_gb = QUICK_START_RECORDS * 12 * 5000 * 4 / 1e9
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1"}
    print(json.dumps({"command": " ".join([os.path.basename(sys.executable), *sys.argv]), "cores": os.cpu_count(),
                      "torch": torch.__version__, "python": platform.python_version(),
                      "records": QUICK_START_RECORDS, "signal_gb": round(signal_gb, 3)}))
    worst = 0.0
    for family in args.families:
        with tempfile.TemporaryDirectory() as output_dir:
            command = [sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--model_type", family,
                       "--max_steps", str(args.max_steps), "--eval_steps", "0", "--checkpointing_steps", "0",
                       "--report_to", "none", "--output_dir", output_dir]
            peak_gb, code, seconds, tail = peak_rss_of(command, env)
        if code != 0:
            raise SystemExit(f"{family}: the quick start failed (exit {code}):\n{tail}")
        worst = max(worst, peak_gb)
        print(json.dumps({"family": family, "max_steps": args.max_steps, "peak_rss_gb": round(peak_gb, 3),
                          "peak_over_signal": round(peak_gb / signal_gb, 2), "wall_s": round(seconds, 1),
                          "target_gb": TARGET_GB, "within_target": peak_gb <= TARGET_GB}))
    print(f"worst peak RSS {worst:.2f} GB for a {signal_gb:.2f} GB corpus signal; target <= {TARGET_GB} GB")


if __name__ == "__main__":
    main()

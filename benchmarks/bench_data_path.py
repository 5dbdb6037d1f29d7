"""The input path against bare tensor work on the same batch, in the same run, on the same cores.

1. Feature extractor: `TamerFeatureExtractor(batch)` on a (B, 12, 5000) float32 batch of ECG-like records against
   (a) bare torch per-record min-max scaling of the same batch (what the output is, without any check), and
   (b) bare torch doing the extractor's checks the direct way (each lead's median and the record's 99th-percentile
   deviation by `torch.kthvalue`, clipped-lead counts, then min-max), i.e. the same work written as plain tensor ops.
   Outputs are compared (max abs difference printed).
2. Data path: a `DataLoader` of pre-training rows through the family's collator (feature extractor, tokenisation,
   masking: `tamer_hf.training.BatchSeededCollator`) against the same `DataLoader` that only stacks the rows' arrays,
   same workers. How much of a training step waits for data is `bench_train.py`'s `data_wait_share`.

    python benchmarks/bench_data_path.py [--batch_size 32 --repeats 20 --model_type tamer --num_workers 0]

Prints one JSON object; ratios are baseline time / our time (1.0 = as fast as the baseline).
"""

import argparse
import contextlib
import json
import platform
import sys
import time
import warnings

import numpy as np
import torch


def best_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def ecg_batch(batch_size: int, seed: int = 0) -> np.ndarray:
    from datasets_scripts import synthetic

    return np.stack([signal for signal, _, _ in synthetic.iter_records(batch_size, seed=seed)]).astype(np.float32)


def torch_minmax(batch: torch.Tensor) -> torch.Tensor:
    low = batch.amin(dim=(1, 2), keepdim=True)
    high = batch.amax(dim=(1, 2), keepdim=True)
    return (batch - low) / (high - low + 1e-8)


def kth_quantile(values: torch.Tensor, quantile: float) -> torch.Tensor:
    """numpy's linear-interpolation quantile along the last dimension, by two `kthvalue` selections."""
    position = quantile * (values.shape[-1] - 1)
    below, fraction = int(position), position - int(position)
    low = values.kthvalue(below + 1, dim=-1).values
    high = values.kthvalue(min(below + 2, values.shape[-1]), dim=-1).values
    return low + fraction * (high - low)


def torch_checked(batch: torch.Tensor) -> torch.Tensor:
    """The extractor's checks as plain tensor ops, then min-max (float64, as the extractor computes)."""
    signal = batch.double()
    finite = torch.isfinite(signal).all()
    median = kth_quantile(signal, 0.5).unsqueeze(-1)
    deviation = (signal - median).abs()
    limit = 20.0 * kth_quantile(deviation.flatten(1), 0.99)
    outliers = (deviation > limit[:, None, None]).any()
    low, high = signal.amin(dim=-1, keepdim=True), signal.amax(dim=-1, keepdim=True)
    clipped = ((signal == high).sum(-1) >= 50) | ((signal == low).sum(-1) >= 50)
    if not finite or outliers or clipped.any():  # the benchmark's batch is clean; a real path would repair here
        raise RuntimeError("unexpected repair in the benchmark batch")
    return torch_minmax(signal).float()


def feature_extractor(args) -> dict:
    from tamer_hf import TamerFeatureExtractor

    extractor = TamerFeatureExtractor()
    batch = ecg_batch(args.batch_size)
    tensor = torch.from_numpy(batch)
    ours = extractor(batch, sampling_rate=500, return_tensors="pt")["input_values"]
    difference = max((ours - baseline(tensor)).abs().max().item() for baseline in (torch_minmax, torch_checked))
    extractor_s = best_seconds(lambda: extractor(batch, sampling_rate=500, return_tensors="pt"), args.repeats)
    minmax_s = best_seconds(lambda: torch_minmax(tensor), args.repeats)
    checked_s = best_seconds(lambda: torch_checked(tensor), args.repeats)
    return {
        "batch": list(batch.shape), "max_abs_difference": difference,
        "extractor_ms": round(1000 * extractor_s, 2),
        "bare_minmax_ms": round(1000 * minmax_s, 2),
        "bare_checked_ms": round(1000 * checked_s, 2),
        "ratio_vs_bare_minmax": round(minmax_s / extractor_s, 3),
        "ratio_vs_bare_checked": round(checked_s / extractor_s, 3),
    }


def data_path(args) -> dict:
    from torch.utils.data import DataLoader

    from bench_train import loop_parts  # this folder is on sys.path when a benchmark script runs

    # ~80 % of the synthetic corpus is its train split
    _, rows, _, collator = loop_parts(args.model_type, None, args.batch_size, 2 * args.batch_size * args.batches,
                                      torch.device("cpu"))
    rows = rows.select(range(min(len(rows), args.batch_size * args.batches)))

    def stack_rows(batch: list[dict]) -> dict:
        return {"ecg": torch.from_numpy(np.stack([row["ecg"] for row in batch]))}

    def epoch(collate) -> None:
        for _ in DataLoader(rows, batch_size=args.batch_size, collate_fn=collate, num_workers=args.num_workers):
            pass

    collated_s = best_seconds(lambda: epoch(collator), max(1, args.repeats // 5))
    rows_s = best_seconds(lambda: epoch(stack_rows), max(1, args.repeats // 5))
    batches = len(rows) // args.batch_size
    return {"model_type": args.model_type, "batches": batches, "num_workers": args.num_workers,
            "collated_ms_per_batch": round(1000 * collated_s / batches, 2),
            "rows_only_ms_per_batch": round(1000 * rows_s / batches, 2),
            "ratio_vs_rows_only": round(rows_s / collated_s, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batches", type=int, default=8, help="data path: batches per pass")
    parser.add_argument("--model_type", default="tamer")
    parser.add_argument("--num_workers", type=int, default=0)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the families' notices; the figures are what this prints
    with contextlib.redirect_stdout(sys.stderr):
        record = {"benchmark": "data_path", "command": "python " + " ".join(["benchmarks/bench_data_path.py", *argv]),
                  "torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
                  "cpu": platform.processor() or platform.machine(),
                  "feature_extractor": feature_extractor(args), "data_path": data_path(args)}
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

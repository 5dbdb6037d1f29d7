"""Training throughput (samples/s) of TAMER pre-training with and without the cached frozen-text features.

Baseline: the report encoder runs on every batch (`--cache_text_features never`). Compared: each unique report is
encoded once up front and looked up per batch (the default). Both time the same full step: collation through the
feature extractor, forward, all four loss terms, backward and the AdamW step, single process.

    python benchmarks/bench_train.py                       # tiny TAMER + a BERT-base-shaped (MedCPT-sized) encoder
    python benchmarks/bench_train.py --preset small --text_shape local --steps 10

Prints one JSON object. Run it on an otherwise idle machine: other processes on the cores distort CPU timings.
"""

import argparse
import json
import platform
import sys
import time
from argparse import Namespace

import torch

TEXT_SHAPES = {  # (hidden size, layers)
    "medcpt": (768, 12),  # the size of ncbi/MedCPT-Query-Encoder (BERT-base), randomly initialised offline
    "local": (256, 1),  # the quick start's local encoder
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "quick", "small", "paper"])
    parser.add_argument("--text_shape", default="medcpt", choices=sorted(TEXT_SHAPES))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from torch.utils.data import DataLoader

    from datasets_scripts import synthetic
    from tamer_hf.families.tamer import TamerCollator, TextFeatureCache, build
    from tamer_hf.training import ReportTable, training_loss
    from tamer_hf.text import train_report_tokenizer

    corpus = synthetic.generate(num_records=args.records, seed=0)["train"]
    reports = ReportTable.from_reports(corpus["report"])
    data = corpus.select_columns(["ecg"]).add_column("report_id", reports.row_report_ids.tolist()).with_format("numpy")
    hidden, layers = TEXT_SHAPES[args.text_shape]
    options = Namespace(model_preset=args.preset, text_encoder="local", local_text_hidden_size=hidden,
                        local_text_layers=layers, local_text_init_range=0.02, local_vocab_size=2000,
                        max_text_length=256, temperature=None,
                        **{f"no_{term}": False for term in ("rlca", "uecr", "rada", "rgwr")})
    tokenizer = train_report_tokenizer(reports.reports)
    results = {}
    for variant in ("uncached", "cached"):
        torch.manual_seed(0)
        model, processor = build(options, reports.reports, tokenizer)
        model.train()
        started = time.perf_counter()
        cache = TextFeatureCache(model, tokenizer, reports.reports, 256) if variant == "cached" else None
        cache_seconds = time.perf_counter() - started
        collate = TamerCollator(processor, reports.reports, 500, text_cache=cache, mask_duplicate_reports=True)
        loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                            generator=torch.Generator().manual_seed(0))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=1e-7)
        batches, timed, elapsed = iter(loader), 0, 0.0
        for step in range(args.warmup + args.steps):
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            loss, _ = training_loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step >= args.warmup:
                elapsed += time.perf_counter() - started
                timed += len(batch["input_values"])
        results[variant] = {"samples_per_s": round(timed / elapsed, 2), "timed_steps": args.steps,
                            "cache_build_s": round(cache_seconds, 2) if cache is not None else None}
    print(json.dumps({
        "benchmark": "train_throughput",
        "command": "python " + " ".join(["benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": "cpu", "cpu": platform.processor() or platform.machine(), "torch_threads": args.threads,
        "torch": torch.__version__, "preset": args.preset, "batch_size": args.batch_size,
        "text_encoder": {"shape": args.text_shape, "hidden_size": hidden, "layers": layers},
        "unique_reports": len(reports.reports), "records": len(data),
        "baseline": "uncached (frozen report encoder run on every batch)",
        "results": results,
        "speedup_cached_vs_uncached": round(results["cached"]["samples_per_s"] / results["uncached"]["samples_per_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()

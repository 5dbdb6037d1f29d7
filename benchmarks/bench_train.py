"""Pre-training throughput of any model family: samples/s, achieved TFLOP/s and MFU, peak memory, and the share of
the step spent waiting for data.

Each family is built, collated and stepped by the pre-training loop's own parts (`family.build`,
`family.make_collator` behind `training.BatchSeededCollator`, `training.training_loss`, a `DataLoader` with
`--num_workers` workers), on synthetic records, with AdamW (fused where torch has it for the device), optional bf16/fp16
autocast and optional `torch.compile`. FLOPs per step are counted once by `torch.utils.flop_counter.FlopCounterMode`
over a forward + backward of one batch (matrix products, convolutions, attention; not the STFT or elementwise ops);
achieved TFLOP/s = FLOPs per step x steps / timed seconds; MFU = achieved / the device's dense peak for the compute
dtype (looked up for known GPUs, or `--peak_tflops`; none on CPU unless given). Data wait = time blocked on the
`DataLoader` for the next batch, including the host-to-device copy.

    python benchmarks/bench_train.py --device cuda --preset paper --batch_size 256 --mixed_precision bf16  # GPU
    python benchmarks/bench_train.py --model_type all --preset tiny --steps 4                             # CPU smoke
    python benchmarks/bench_train.py --compare text_cache --steps 6   # TAMER: cached vs per-batch report features

`--preset` takes a family's preset name, or a size shared by every family (`tiny`, `quick`, `paper`: C-MELT's
`cmelt-paper`, ...). The report encoder is always the offline local one (`--text_encoder local`) sized by the
preset; anything after `--` goes to the pre-training parser (e.g. `-- --cmelt_local_text_layers 12`).

Prints one JSON object. CPU timings are only comparable on otherwise idle cores.
"""

import argparse
import contextlib
import json
import platform
import resource
import sys
import time
from argparse import Namespace

import torch

# Dense (no sparsity) bf16/fp16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets; matched in this order against
# torch.cuda.get_device_name() (so "L40S" is tried before "L4").
GPU_PEAK_TFLOPS = [("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1),
                   ("L4", 121.0)]

TEXT_SHAPES = {  # --compare text_cache: (hidden size, layers) of the frozen report encoder
    "medcpt": (768, 12),  # the size of ncbi/MedCPT-Query-Encoder (BERT-base), randomly initialised offline
    "local": (256, 1),  # the quick start's local encoder
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=["throughput", "text_cache"], default="throughput")
    parser.add_argument("--model_type", default="tamer", help="a family, or 'all'")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default=None,
                        help="autocast dtype (default: bf16 on CUDA, none on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no_fused_adamw", action="store_true", help="the for-each AdamW instead of the fused one")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, allocator, caches)")
    parser.add_argument("--records", type=int, help="synthetic records (default: enough for warm-up + timed steps)")
    parser.add_argument("--num_workers", type=int, default=1, help="DataLoader workers collating the batches")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the step")
    parser.add_argument("--peak_tflops", type=float, help="the device's dense peak for the compute dtype")
    parser.add_argument("--text_shape", default="medcpt", choices=sorted(TEXT_SHAPES), help="--compare text_cache")
    return parser


def machine(args) -> dict:
    import numpy

    facts = {"device": args.device, "torch": torch.__version__, "numpy": numpy.__version__,
             "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if args.device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(args.device)
    return facts


def device_peak_tflops(args, dtype) -> float | None:
    if args.peak_tflops is not None:
        return args.peak_tflops
    if not args.device.startswith("cuda") or dtype not in (torch.bfloat16, torch.float16):
        return None  # CPU peaks depend on the SKU and the vector units: pass --peak_tflops
    name = torch.cuda.get_device_name(args.device)
    return next((peak for key, peak in GPU_PEAK_TFLOPS if key in name), None)


def resolve_preset(family, preset: str) -> str:
    if preset in family.presets:
        return preset
    prefixed = f"{family.model_type}-{preset}"
    if prefixed in family.presets:
        return prefixed
    raise SystemExit(f"error: {family.model_type} has no preset {preset!r} ({', '.join(sorted(family.presets))}).")


def to_device(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop_parts(model_type: str, preset: str | None, batch_size: int, num_records: int, device: torch.device,
               extra=()):
    """One family's pre-training parts, assembled as `tamer_hf.training.pretrain` assembles them: the loop's options,
    synthetic training rows with report ids and row indices, the local tokenizer, the model (on `device`, train mode)
    and the batch-seeded collator. -> (options, rows, model, collator)."""
    from accelerate import Accelerator
    from datasets_scripts import synthetic
    from tamer_hf.families import get_family
    from tamer_hf.training import BatchSeededCollator, ReportTable, load_tokenizer, parse_args

    family = get_family(model_type)
    preset_args = ["--model_preset", preset] if preset else []
    options = parse_args(["--model_type", model_type, *preset_args, "--text_encoder", "local", "--batch_size",
                          str(batch_size), "--max_steps", "1", "--report_to", "none", *extra])
    corpus = synthetic.generate(num_records=num_records, seed=0)["train"]
    reports = ReportTable.from_reports(corpus["report"])
    rows = corpus.select_columns(["ecg"]).add_column("report_id", reports.row_report_ids.tolist())
    rows = rows.add_column("row_index", list(range(len(rows)))).with_format("numpy")
    accelerator = Accelerator(cpu=device.type == "cpu")
    torch.manual_seed(0)
    tokenizer = load_tokenizer(options, family, None, reports.reports, accelerator)
    model, processor = family.build(options, reports.reports, tokenizer)
    model.to(device).train()
    collator = BatchSeededCollator(family.make_collator(options, model, processor, reports.reports, accelerator),
                                   options.seed)
    return options, rows, model, collator


def throughput(args, model_type: str, extra: list[str]) -> dict:
    """One family: the loop's parts, timed."""
    from torch.utils.data import DataLoader
    from torch.utils.flop_counter import FlopCounterMode

    from tamer_hf.families import get_family
    from tamer_hf.training import training_loss

    preset = resolve_preset(get_family(model_type), args.preset)
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": None}[args.mixed_precision]
    records = args.records or max(args.batch_size * (args.warmup + args.steps + 1), 64)
    loop_args, rows, model, collator = loop_parts(model_type, preset, args.batch_size, records, device, extra)
    loader = DataLoader(rows, batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=collator,
                        num_workers=args.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.num_workers > 0, generator=torch.Generator().manual_seed(0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = not args.no_fused_adamw
    try:
        optimizer = torch.optim.AdamW(trainable, lr=loop_args.learning_rate, weight_decay=loop_args.weight_decay,
                                      fused=fused)
    except RuntimeError:  # no fused kernel for this device in this torch
        fused = False
        optimizer = torch.optim.AdamW(trainable, lr=loop_args.learning_rate, weight_decay=loop_args.weight_decay)
    step_model = torch.compile(model) if args.compile else model
    parameters = sum(p.numel() for p in model.parameters())

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    batches = iter(loader)

    def next_batch():
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        return to_device(batch, device)

    # FLOPs of one forward + backward, counted on the eager model (the compiled one runs the same operations)
    batch = next_batch()
    with FlopCounterMode(display=False) as counter, autocast():
        loss, _ = training_loss(model, batch)
        loss.backward()
    flops_per_step = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wait = compute = 0.0
    samples = 0
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        batch = next_batch()
        synchronize(device)
        fetched = time.perf_counter()
        with autocast():
            loss, _ = training_loss(step_model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        finished = time.perf_counter()
        if step >= args.warmup:
            wait += fetched - started
            compute += finished - fetched
            samples += len(batch["input_values"])
    if not torch.isfinite(loss.detach()).item():
        raise SystemExit(f"error: {model_type}: the loss is not finite ({loss.item()}); the figures would mean "
                         "nothing.")
    seconds = wait + compute
    achieved = flops_per_step * args.steps / seconds / 1e12
    peak = device_peak_tflops(args, dtype)
    if device.type == "cuda":
        peak_memory = {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}
    else:  # this process's high-water mark (Linux: KiB), whatever ran before in it
        peak_memory = {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    return {
        "model_type": model_type, "preset": preset, "parameters": parameters, "batch_size": args.batch_size,
        "mixed_precision": args.mixed_precision, "compiled": args.compile, "fused_adamw": fused,
        "num_workers": args.num_workers, "timed_steps": args.steps,
        "samples_per_s": round(samples / seconds, 2),
        "step_ms": round(1000 * seconds / args.steps, 1),
        "flops_per_sample": flops_per_step / args.batch_size,
        "flops_per_step": flops_per_step,
        "achieved_tflops": float(f"{achieved:.4g}"),
        "peak_tflops": peak,
        "mfu": float(f"{achieved / peak:.4g}") if peak else None,
        "data_wait_share": round(wait / seconds, 4),
        **peak_memory,
    }


def text_cache(args) -> dict:
    """TAMER: the frozen report encoder run on every batch (baseline) against each unique report encoded once up
    front and looked up per batch. Both time the same full step: collation through the feature extractor, forward, all
    four loss terms, backward and the AdamW step, single process."""
    from torch.utils.data import DataLoader

    from datasets_scripts import synthetic
    from tamer_hf.families.tamer import TamerCollator, TextFeatureCache, build
    from tamer_hf.text import train_report_tokenizer
    from tamer_hf.training import ReportTable, training_loss

    records = args.records or 400
    corpus = synthetic.generate(num_records=records, seed=0)["train"]
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
    return {"preset": args.preset, "batch_size": args.batch_size,
            "text_encoder": {"shape": args.text_shape, "hidden_size": hidden, "layers": layers},
            "unique_reports": len(reports.reports), "records": len(data),
            "baseline": "uncached (frozen report encoder run on every batch)", "results": results,
            "speedup_cached_vs_uncached": round(results["cached"]["samples_per_s"]
                                                / results["uncached"]["samples_per_s"], 2)}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(ours)
    if args.mixed_precision is None:
        args.mixed_precision = "bf16" if args.device.startswith("cuda") else "no"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but torch sees no CUDA device.")
    if min(args.batch_size, args.steps) <= 0 or min(args.warmup, args.num_workers) < 0:
        raise SystemExit("error: --batch_size and --steps must be positive, --warmup and --num_workers non-negative.")
    torch.set_num_threads(args.threads)
    record = {"benchmark": f"train_{args.compare}",
              "command": "python " + " ".join(["benchmarks/bench_train.py", *argv]), **machine(args)}
    from tamer_hf.families import family_names

    with contextlib.redirect_stdout(sys.stderr):  # the families' progress lines: stdout carries only the JSON
        if args.compare == "text_cache":
            record.update(text_cache(args))
        else:
            names = family_names() if args.model_type == "all" else [args.model_type]
            record["families"] = [throughput(args, name, extra) for name in names]
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

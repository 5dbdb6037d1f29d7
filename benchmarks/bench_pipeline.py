"""Pipeline throughput (ECGs/s) and single-record latency against a bare model forward on the same inputs.

    python benchmarks/bench_pipeline.py [--preset paper|small|tiny] [--batch_size 32] [--num_records 64]

Baseline ("bare forward"): the ECGs already prepared as one (B, 12, 5000) tensor and the label prompts already
encoded, timing only `get_ecg_features` + the cosine matrix under `torch.no_grad()` -- the floor any wrapper can reach.
Pipeline: `classifier(list_of_raw_arrays, sampling_rate=500, candidate_labels=..., batch_size=B)`, i.e. including the
feature extractor (lead layout, NaN check, crop/pad, min-max), collation, softmax and sorting. The model is randomly
initialised (weights do not change the cost) with the chosen ECG preset and a small locally built text encoder,
because the default MedCPT encoder cannot be downloaded here; prompts are encoded once and cached by the pipeline in
both cases. Prints one JSON object.
"""

import argparse
import json
import platform
import time

import numpy as np
import torch

from tamer_hf.modeling.modeling_tamer import TamerModel
from tamer_hf.modeling.processing_tamer import TamerProcessor
from tamer_hf.modeling.feature_extraction_tamer import TamerFeatureExtractor
from tamer_hf.pipelines import TASK, pipeline
from tamer_hf.presets import preset_config
from tamer_hf.text import small_text_config, train_report_tokenizer

LABELS = ["normal ecg", "atrial fibrillation", "sinus bradycardia", "sinus tachycardia", "left bundle branch block",
          "right bundle branch block", "first degree av block", "st elevation", "st depression"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "small", "tiny"])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_records", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (alternating); the best is reported")
    parser.add_argument("--single_repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def build(preset: str, device: str):
    tokenizer = train_report_tokenizer(LABELS, vocab_size=500)
    config = preset_config(preset, text_config=small_text_config(tokenizer).to_dict())
    torch.manual_seed(0)
    model = TamerModel(config).eval().to(device)
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer)
    return model, processor


def timed(function, device: str) -> float:
    start = time.perf_counter()
    function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved_best(first, second, repeats: int, device: str) -> tuple[float, float]:
    """Best time of each, alternating the two so that load from other processes hits both alike."""
    first_times, second_times = [], []
    for _ in range(repeats):
        first_times.append(timed(first, device))
        second_times.append(timed(second, device))
    return min(first_times), min(second_times)


def main():
    args = parse_args()
    model, processor = build(args.preset, args.device)
    classifier = pipeline(TASK, model=model, tokenizer=processor.tokenizer,
                          feature_extractor=processor.feature_extractor, device=args.device)
    rng = np.random.default_rng(0)
    records = [rng.normal(size=(12, 5000)).astype(np.float32) for _ in range(args.num_records)]

    prepared = processor.feature_extractor(records, sampling_rate=500, return_tensors="pt")["input_values"]
    prepared = prepared.to(args.device)
    text_embeds = classifier._text_embeds([label.lower() for label in LABELS])  # warms the pipeline's cache too

    @torch.no_grad()
    def bare(batch):
        return model.get_ecg_features(input_values=batch) @ text_embeds.T

    def bare_all():
        for start in range(0, args.num_records, args.batch_size):
            bare(prepared[start:start + args.batch_size])

    def pipeline_all():
        classifier(records, sampling_rate=500, candidate_labels=LABELS, batch_size=args.batch_size)

    bare_all(), pipeline_all()  # warm-up
    bare_batch_s, pipeline_batch_s = interleaved_best(bare_all, pipeline_all, args.repeats, args.device)
    bare_single_s, pipeline_single_s = interleaved_best(
        lambda: bare(prepared[:1]), lambda: classifier(records[0], sampling_rate=500, candidate_labels=LABELS),
        args.single_repeats, args.device,
    )
    print(json.dumps({
        "benchmark": "zero-shot-ecg-classification pipeline vs bare model forward",
        "preset": args.preset, "parameters": sum(p.numel() for p in model.parameters()),
        "device": args.device, "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "batch_size": args.batch_size, "num_records": args.num_records, "num_labels": len(LABELS),
        "bare_forward_ecgs_per_s": round(args.num_records / bare_batch_s, 2),
        "pipeline_ecgs_per_s": round(args.num_records / pipeline_batch_s, 2),
        "throughput_ratio": round(bare_batch_s / pipeline_batch_s, 3),
        "bare_forward_single_latency_ms": round(1000 * bare_single_s, 2),
        "pipeline_single_latency_ms": round(1000 * pipeline_single_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()

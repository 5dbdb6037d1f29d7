"""N3S cost at MIMIC-IV-ECG scale: deduplicating 800,000 reports, embedding the unique ones, building the
least-similar index (FAISS and exact) and one training batch's search.

    python benchmarks/bench_n3s.py                                  # tiny local T5 encoder, runs offline
    python benchmarks/bench_n3s.py --encoder google/flan-t5-small   # the paper's encoder (Hub or local folder)

What is measured, in this order:
1. 800,000 synthetic machine-style reports (a few statements each, skewed statement frequencies so that, as in
   MIMIC, most records share their report with others) -> unique reports (count printed).
2. Embedding: the first `--embed_limit` unique reports are embedded and timed; the time for all unique reports is
   *extrapolated* from that rate (`embed_all_s_extrapolated`) unless the limit covers them all.
3. Index on the measured embeddings (real vectors, R = embedded count, D = the encoder's width).
4. Index on `--num_vectors` (800,000) random unit vectors of `--dim` (512 = flan-t5-small): the worst case of no
   duplicates at the paper's width. Measured, not extrapolated.
For 3 and 4, each backend: build time, index bytes, RSS growth, the least-similar search for `--queries` (64)
reports with k = `--k` (64), and a full `NegativeSampler` call for a batch of `--batch_size` (128) reports
(64 swaps). Peak RSS is `resource.getrusage` (max resident set of this process so far) after each stage.

Prints one JSON object. CPU timings are distorted by anything else running on the cores; the load average at the
start and the end is part of the output.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections import Counter

import numpy as np
import torch

from tamer_hf.n3s import NegativeSampler, NeighbourIndex, embed_reports, load_text_encoder, local_t5_encoder
from tamer_hf.text import CLINICAL_STATEMENTS

RHYTHMS = ["sinus rhythm", "sinus bradycardia", "sinus tachycardia", "atrial fibrillation", "sinus arrhythmia",
           "atrial flutter", "atrial fibrillation with rapid ventricular response", "pacemaker rhythm",
           "junctional rhythm", "supraventricular tachycardia", "atrial flutter with variable block"]
OVERALL = ["normal ecg", "abnormal ecg", "borderline ecg", "otherwise normal ecg"]
QUALIFIERS = ["", "possible ", "probable ", "consider "]  # as in machine statements ("probable lvh", ...)


def statement_vocabulary() -> list[str]:
    """The single statements of tamer_hf.text.CLINICAL_STATEMENTS that are findings (not rhythms or verdicts)."""
    statements = [s.strip() for line in CLINICAL_STATEMENTS for s in line.split(".") if s.strip()]
    return [s for s in dict.fromkeys(statements) if s not in RHYTHMS and s not in OVERALL]


def mimic_like_reports(num_reports: int, seed: int = 0) -> list[str]:
    """"rhythm. finding. finding. verdict." with Zipf-distributed rhythms and findings (0-5 findings per report, a
    third of them qualified: "possible", "probable", "consider")."""
    rng = np.random.default_rng(seed)
    findings = statement_vocabulary()

    def zipf(n, exponent):
        weights = 1.0 / np.arange(1, n + 1) ** exponent
        return weights / weights.sum()

    rhythm_ids = rng.choice(len(RHYTHMS), num_reports, p=zipf(len(RHYTHMS), 1.5))
    finding_counts = rng.choice(6, num_reports, p=[0.25, 0.25, 0.22, 0.14, 0.09, 0.05])
    finding_ids = rng.choice(len(findings), (num_reports, 5), p=zipf(len(findings), 0.9))
    qualifier_ids = rng.choice(len(QUALIFIERS), (num_reports, 5), p=[0.67, 0.11, 0.11, 0.11])
    overall_ids = rng.choice(len(OVERALL), num_reports, p=[0.3, 0.5, 0.15, 0.05])
    reports = []
    for row in range(num_reports):
        chosen = dict.fromkeys(sorted(finding_ids[row, :finding_counts[row]].tolist()))  # machine order, no repeats
        statements = [QUALIFIERS[q] + findings[f] for f, q in zip(chosen, qualifier_ids[row])]
        verdict = "normal ecg" if not statements and overall_ids[row] == 0 else OVERALL[max(1, overall_ids[row])]
        reports.append(". ".join([RHYTHMS[rhythm_ids[row]], *statements, verdict]) + ".")
    return reports


def random_unit_vectors(num: int, dim: int, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = np.empty((num, dim), dtype=np.float32)  # (N, D), normalised chunk by chunk: no second copy
    for start in range(0, num, chunk):
        block = rng.standard_normal((min(chunk, num - start), dim), dtype=np.float32)
        vectors[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(function, repeats: int = 1):
    """(result of the last call, median seconds over `repeats` calls)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def index_stage(embeddings: np.ndarray, backends, args) -> dict:
    rng = np.random.default_rng(1)
    queries = rng.choice(len(embeddings), args.queries, replace=False)
    batch = torch.from_numpy(rng.choice(len(embeddings), args.batch_size, replace=True))
    stage, found = {"num_vectors": int(len(embeddings)), "dim": int(embeddings.shape[1])}, {}
    for backend in backends:
        rss_before = current_rss_mib()
        device = args.device if backend == "exact" else None
        index, build_s = timed(lambda: NeighbourIndex(embeddings, backend=backend, device=device))
        rss_after = current_rss_mib()
        neighbours, search_s = timed(lambda: index.least_similar(queries, args.k), repeats=args.repeats)
        sampler = NegativeSampler(index, k=args.k)
        generator = torch.Generator().manual_seed(0)
        (_, is_aligned), sampler_s = timed(lambda: sampler(batch, generator), repeats=args.repeats)
        found[backend] = neighbours
        stage[backend] = {
            "build_s": round(build_s, 3),
            "index_bytes": index.nbytes,
            "rss_growth_mib": round(rss_after - rss_before, 1),
            f"least_similar_{args.queries}x{args.k}_s": round(search_s, 4),
            f"sampler_batch_{args.batch_size}_s": round(sampler_s, 4),
            "swaps_in_batch": int((is_aligned == 0).sum()),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
        del index, sampler
    if len(found) == 2:  # same ids row by row; where not, the similarities show whether it is a tie
        same = (found["faiss"].ids == found["exact"].ids).all(axis=1)
        stage["faiss_equals_exact_rows"] = f"{int(same.sum())}/{args.queries}"
        stage["faiss_vs_exact_max_similarity_difference"] = float(
            np.abs(found["faiss"].similarities - found["exact"].similarities).max())
    return stage


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_reports", type=int, default=800_000)
    parser.add_argument("--encoder", default="local",
                        help="'local' (tiny T5 built offline: --local_d_model, --local_layers) or a Hub name/folder")
    parser.add_argument("--local_d_model", type=int, default=64)
    parser.add_argument("--local_layers", type=int, default=2)
    parser.add_argument("--local_heads", type=int, default=4,
                        help="--local_d_model 512 --local_layers 8 --local_heads 6: about flan-t5-small's encoder cost")
    parser.add_argument("--embed_limit", type=int, default=20_000, help="unique reports embedded and timed")
    parser.add_argument("--embed_batch_size", type=int, default=256)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--num_vectors", type=int, default=800_000, help="random unit vectors for the 512-d index")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default=None, help="embedding and exact-search device, e.g. cuda (default: CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        backends, faiss_version = ("faiss", "exact"), faiss.__version__
    except ImportError:
        backends, faiss_version = ("exact",), None
    import transformers

    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": args.threads, "device": args.device or "cpu",
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "faiss": faiss_version, "numpy": np.__version__,
                    "transformers": transformers.__version__,
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }

    reports, generate_s = timed(lambda: mimic_like_reports(args.num_reports))
    lengths = np.array([len(r) for r in reports])
    unique, dedup_s = timed(lambda: list(dict.fromkeys(reports)))
    result["reports"] = {"records": len(reports), "unique": len(unique), "generate_s": round(generate_s, 2),
                         "dedup_s": round(dedup_s, 3),
                         "chars_p5_median_p95": [int(np.percentile(lengths, q)) for q in (5, 50, 95)],
                         "most_common_share": round(Counter(reports).most_common(1)[0][1] / len(reports), 3)}
    del reports

    if args.encoder == "local":
        model, tokenizer = local_t5_encoder(unique[:50_000], d_model=args.local_d_model,
                                            num_layers=args.local_layers, num_heads=args.local_heads)
    else:
        model, tokenizer = load_text_encoder(args.encoder)
    model.to(args.device or "cpu")
    embedded = unique[:args.embed_limit]
    embeddings, embed_s = timed(lambda: embed_reports(embedded, model, tokenizer, batch_size=args.embed_batch_size,
                                                      max_length=args.max_length))
    rate = len(embedded) / embed_s
    result["embedding"] = {
        "encoder": args.encoder if args.encoder != "local" else
        f"local T5EncoderModel d_model={args.local_d_model} layers={args.local_layers} heads={args.local_heads} "
        "(random weights)",
        "parameters": sum(p.numel() for p in model.parameters()), "dim": int(embeddings.shape[1]),
        "embedded_reports_measured": len(embedded), "embed_s_measured": round(embed_s, 2),
        "reports_per_s": round(rate, 1),
        ("embed_all_s_measured" if len(embedded) == len(unique) else "embed_all_s_extrapolated"):
            round(len(unique) / rate, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    del model

    result["index_on_measured_embeddings"] = index_stage(embeddings, backends, args)
    vectors, random_s = timed(lambda: random_unit_vectors(args.num_vectors, args.dim))
    result["index_on_random_unit_vectors"] = {"generate_s": round(random_s, 2),
                                              **index_stage(vectors, backends, args)}
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

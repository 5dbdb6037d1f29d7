"""`benchmarks/bench_train.py` runs on CPU for every family with a tiny preset (its CUDA path is the same code with
`--device cuda`), and so does `bench_data_path.py`; their figures are consistent with one another. No timing is
asserted."""

import json
import os
import subprocess
import sys

import pytest

from tamer_hf.families import family_names

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "bench_train.py")


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def every_family():
    done = bench("--model_type", "all", "--preset", "tiny", "--device", "cpu", "--batch_size", "4", "--steps", "2",
                 "--warmup", "1", "--num_workers", "1", "--peak_tflops", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # stdout is the JSON alone


def test_every_family_is_measured_with_the_machine_and_command(every_family):
    assert [row["model_type"] for row in every_family["families"]] == family_names()
    assert every_family["device"] == "cpu" and every_family["torch"] and every_family["torch_threads"] == 1
    assert every_family["command"].startswith("python benchmarks/bench_train.py --model_type all")


def test_figures_agree_with_one_another(every_family):
    for row in every_family["families"]:
        assert row["samples_per_s"] > 0 and row["flops_per_step"] > 0 and row["parameters"] > 0
        seconds_per_step = row["step_ms"] / 1000
        assert row["samples_per_s"] == pytest.approx(row["batch_size"] / seconds_per_step, rel=0.01)
        assert row["flops_per_sample"] * row["batch_size"] == row["flops_per_step"]
        # achieved TFLOP/s = FLOPs per step / seconds per step; MFU against the peak passed on the command line
        assert row["achieved_tflops"] == pytest.approx(row["flops_per_step"] / seconds_per_step / 1e12, rel=0.01)
        assert row["peak_tflops"] == 0.5
        assert row["mfu"] == pytest.approx(row["achieved_tflops"] / 0.5, rel=0.01)
        assert 0 <= row["data_wait_share"] < 1 and row["peak_rss_gib"] > 0


def test_flops_per_sample_do_not_depend_on_the_batch(every_family):
    """A second batch size counts the same FLOPs per sample (within the batch-level terms: contrastive matrices)."""
    done = bench("--model_type", "tamer", "--preset", "tiny", "--device", "cpu", "--batch_size", "8", "--steps", "1",
                 "--warmup", "0", "--num_workers", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    eight = json.loads(done.stdout)["families"][0]
    four = next(row for row in every_family["families"] if row["model_type"] == "tamer")
    assert eight["flops_per_sample"] == pytest.approx(four["flops_per_sample"], rel=0.05)
    assert eight["mfu"] is None  # no peak known for a CPU


def test_cuda_without_a_gpu_is_a_clear_error():
    done = bench("--device", "cuda", "--steps", "1")
    assert done.returncode != 0 and "no CUDA device" in done.stderr and "Traceback" not in done.stderr


def test_the_data_path_benchmark_compares_equal_outputs():
    """`benchmarks/bench_data_path.py`: the feature extractor's output equals both bare-torch baselines' (to float32
    rounding), and every ratio is printed."""
    done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "bench_data_path.py"), "--batch_size", "4",
                           "--repeats", "2", "--batches", "2"], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    extractor = record["feature_extractor"]
    assert extractor["batch"] == [4, 12, 5000] and extractor["max_abs_difference"] < 1e-6
    assert extractor["ratio_vs_bare_minmax"] > 0 and extractor["ratio_vs_bare_checked"] > 0
    assert record["data_path"]["batches"] == 2 and record["data_path"]["ratio_vs_rows_only"] > 0

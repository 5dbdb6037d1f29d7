"""`--global_batch_size` means the same optimizer steps however the run is launched: one process, two processes
(`accelerate launch --multi_gpu --num_processes 2` on CPU) or one process with gradient accumulation all see the same
rows in every step and the same learning-rate schedule, and print the same plan."""

import json
import os

import pytest

from tamer_hf.testing_utils import accelerate_launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = ["--synthetic_records", "120", "--global_batch_size", "8", "--max_steps", "13", "--model_preset", "tiny",
       "--local_text_hidden_size", "32", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none",
       "--precise_bn_batches", "0", "--lr_scheduler", "cosine", "--warmup_steps", "1", "--seed", "3"]


def launch(out, num_processes: int, *extra):
    done = accelerate_launch(num_processes, [os.path.join(REPO, "examples", "pretrain.py"), *RUN, "--output_dir",
                                             out / "run", "--save_every_loss", out / "steps.jsonl", *extra],
                             cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    return steps, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("global_batch")
    launches = {"one": (1,), "two": (2,), "accumulate": (1, "--gradient_accumulation_steps", "2")}
    results = {}
    for name, (processes, *extra) in launches.items():
        (root / name).mkdir()
        results[name] = launch(root / name, processes, *extra)
    return results


def test_every_launch_prints_the_same_global_plan(runs):
    assert "1 process(es) x batch 8 x accumulation 1 = global batch 8" in runs["one"][1]
    assert "2 process(es) x batch 4 x accumulation 1 = global batch 8" in runs["two"][1]
    assert "1 process(es) x batch 4 x accumulation 2 = global batch 8" in runs["accumulate"][1]
    for _, log in runs.values():
        assert "94 records" in log and "11 steps per epoch, 13 steps" in log  # 94 training records // 8: the run crosses an epoch


@pytest.mark.parametrize("other", ["two", "accumulate"])
def test_every_step_sees_the_same_rows_and_learning_rate(runs, other):
    reference, compared = runs["one"][0], runs[other][0]
    assert [step["step"] for step in reference] == [step["step"] for step in compared] == list(range(1, 14))
    for ours, theirs in zip(reference, compared):
        assert len(ours["rows"]) == len(theirs["rows"]) == 8
        assert ours["rows"] == pytest.approx(theirs["rows"], rel=1e-9)  # the same 8 ECGs (sorted row sums)
        assert ours["lr"] == pytest.approx(theirs["lr"], rel=1e-12)
    assert len({tuple(step["rows"]) for step in reference}) == 13  # and the steps are not all the same rows

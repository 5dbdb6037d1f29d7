"""`--report_to`: our JSONL tracker and every accelerate tracker pass through to `Accelerator(log_with=...)`; a
requested tracker that is not installed is a one-line error before anything is loaded."""

import json
import os
import subprocess
import sys

import pytest

from tamer_hf.training import (accelerate_tracker_names, default_report_to, make_trackers, parse_args,
                               tracker_installed)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = [name for name in accelerate_tracker_names() if not tracker_installed(name)]
INSTALLED = [name for name in accelerate_tracker_names() if tracker_installed(name)]


def accelerator_trackers(tmp_path, report_to):
    """The trackers a real Accelerator starts for `--report_to report_to` (what the training loop does)."""
    from accelerate import Accelerator

    args = parse_args(["--report_to", report_to, "--output_dir", str(tmp_path), "--project_name", "run"])
    accelerator = Accelerator(cpu=True, log_with=make_trackers(args) or None, project_dir=str(tmp_path))
    accelerator.init_trackers("run", config={"learning_rate": 0.1})
    accelerator.log({"train/loss": 1.5}, step=1)
    names = sorted(tracker.name for tracker in accelerator.trackers)
    accelerator.end_training()
    return names


def test_accelerate_knows_the_trackers_the_help_names():
    assert {"tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio"} <= set(
        accelerate_tracker_names())


@pytest.mark.skipif("tensorboard" not in INSTALLED, reason="tensorboard is not installed")
def test_jsonl_and_an_accelerate_tracker_both_log(tmp_path):
    assert accelerator_trackers(tmp_path, "jsonl,tensorboard") == ["jsonl", "tensorboard"]
    rows = [json.loads(line) for line in (tmp_path / "logs" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0] == {"config": {"learning_rate": 0.1}} and rows[1]["train/loss"] == 1.5 and rows[1]["step"] == 1
    assert any(name.startswith("events.out.tfevents") for _, _, names in os.walk(tmp_path) for name in names)


def test_all_starts_every_installed_accelerate_tracker_plus_jsonl(tmp_path):
    assert accelerator_trackers(tmp_path, "all,jsonl") == sorted(["jsonl", *INSTALLED])


def test_none_starts_no_tracker(tmp_path):
    assert make_trackers(parse_args(["--report_to", "none", "--output_dir", str(tmp_path)])) == []


def test_the_default_is_jsonl_plus_tensorboard_where_installed():
    assert default_report_to() == ("jsonl,tensorboard" if "tensorboard" in INSTALLED else "jsonl")
    assert parse_args([]).report_to == default_report_to()


@pytest.mark.skipif(not MISSING, reason="every accelerate tracker is installed here")
def test_a_requested_tracker_that_is_not_installed_is_named():
    with pytest.raises(ValueError, match=rf"--report_to: {MISSING[0]} requested but not installed"):
        parse_args(["--report_to", f"jsonl,{MISSING[0]}"])


def test_an_unknown_tracker_is_named():
    with pytest.raises(ValueError, match="unknown tracker.*neptune.*choose from jsonl, all, aim"):
        parse_args(["--report_to", "neptune"])


@pytest.mark.skipif(not MISSING, reason="every accelerate tracker is installed here")
def test_the_cli_stops_with_one_line_before_training(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--report_to", MISSING[0],
                           "--output_dir", str(tmp_path / "run")],
                          env={**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert f"error: --report_to: {MISSING[0]} requested but not installed" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


@pytest.mark.skipif(not MISSING, reason="every accelerate tracker is installed here")
def test_finetuning_checks_report_to_the_same_way(tmp_path):
    from tamer_hf.finetuning import parse_args as finetune_args

    base = ["--model", str(tmp_path), "--dataset", str(tmp_path), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=rf"--report_to: {MISSING[0]} requested but not installed"):
        finetune_args([*base, "--report_to", MISSING[0]])
    assert finetune_args([*base, "--report_to", "all,jsonl"]).report_to == "all,jsonl"

"""Builders log through `logging` (module loggers under "datasets_scripts", stderr) with tqdm bars, never print to
stdout; `--verbosity warning` keeps only problems."""

import os
import subprocess
import sys

import pytest

from datasets_scripts import log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare_synthetic(output_dir, *options):
    return subprocess.run([sys.executable, "-m", "datasets_scripts.synthetic", "--output_dir", str(output_dir),
                           "--num_records", "12", "--num_workers", "1", *options], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_summary_and_progress_go_to_the_log_not_stdout(tmp_path):
    done = prepare_synthetic(tmp_path / "info")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "[synthetic] kept 12 records" in done.stderr and "synthetic: 100%" in done.stderr  # summary, tqdm bar

    quiet = prepare_synthetic(tmp_path / "warning", "--verbosity", "warning")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and "kept 12 records" not in quiet.stderr and "100%" not in quiet.stderr
    assert (tmp_path / "warning" / "README.md").is_file()  # the work itself is the same


def test_module_loggers_follow_the_library_verbosity():
    logger = log.get_logger("datasets_scripts.prepare")
    assert logger.parent.name == "datasets_scripts"
    try:
        log.set_verbosity("warning")
        assert not logger.isEnabledFor(log.INFO) and log.progress_bar(range(3)).disable
        log.set_verbosity(log.INFO)
        assert logger.isEnabledFor(log.INFO) and not log.progress_bar(range(3)).disable
    finally:
        log.set_verbosity(log.INFO)
    with pytest.raises(ValueError, match="unknown verbosity 'loud'"):
        log.set_verbosity("loud")

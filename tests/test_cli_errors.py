"""Every command ends with a short message and an exit status instead of a traceback: bad input 2 (one line), any
other error 1 (the error and how to see its traceback), Ctrl-C 130; `--debug` or TAMER_DEBUG=1 shows the traceback."""

import os
import subprocess
import sys

import pytest

from tamer_hf.commands import run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def failing_with(error):
    def main(argv):
        raise error
    return main


def test_bad_input_is_one_line_and_status_2(capsys):
    assert run(failing_with(FileNotFoundError("no such model folder: m")), [], "tamer eval", (FileNotFoundError,)) == 2
    assert capsys.readouterr().err.splitlines() == ["tamer eval: error: no such model folder: m"]


def test_a_runtime_error_names_its_type_and_how_to_see_the_traceback_with_status_1(capsys):
    error = RuntimeError("disk full\nwhile writing shard 3")
    assert run(failing_with(error), [], "tamer prepare", (ValueError,)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["tamer prepare: error: RuntimeError: disk full ...",
                     "tamer prepare: (run again with --debug, or TAMER_DEBUG=1, for the traceback)"]


def test_ctrl_c_is_status_130(capsys):
    assert run(failing_with(KeyboardInterrupt()), [], "tamer pretrain") == 130
    assert capsys.readouterr().err.strip() == "tamer pretrain: interrupted"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(how, monkeypatch):
    seen = []

    def main(argv):
        seen.append(argv)
        raise ValueError("bad --model")

    argv = ["--model", "x"] + (["--debug"] if how == "flag" else [])
    if how == "environment":
        monkeypatch.setenv("TAMER_DEBUG", "1")
    with pytest.raises(ValueError, match="bad --model"):
        run(main, argv, "tamer eval", (ValueError,))
    assert seen == [["--model", "x"]]  # the program never sees --debug


def test_a_diverging_pretraining_run_exits_1_with_its_reason_and_no_traceback(tmp_path):
    argv = [sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--model_preset", "tiny",
            "--local_text_hidden_size", "32", "--synthetic_records", "60", "--batch_size", "8", "--max_steps", "6",
            "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none", "--learning_rate", "1e12"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    for extra, status in (([], 1), (["--debug"], 1)):
        done = subprocess.run(argv + ["--output_dir", str(tmp_path / f"run{len(extra)}")] + extra,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == status, done.stderr[-2000:]
        assert "FloatingPointError" in done.stderr and "training diverged" in done.stderr
        assert ("Traceback" in done.stderr) == bool(extra), done.stderr[-2000:]

"""Every command ends with a short message and an exit status instead of a traceback: bad input 2 (one line), any
other error 1 (the error and how to see its traceback), Ctrl-C 130; `--debug` or TAMER_DEBUG=1 shows the traceback."""

import json
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


# ----------------------------------------------------------------------------------------------------------------------
# Issue 14: the dataset builders' bad input, through `tamer prepare` in a fresh process


def prepare(*arguments, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "tamer_hf", "prepare", *map(str, arguments)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_usage_error(done, *fragments):
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, last


def ecg_table(path, num_records=3):
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(0)
    ecgs = [(rng.standard_normal((12, 5000)) * 0.3).astype("float32").tolist() for _ in range(num_records)]
    Dataset.from_dict({"ecg": ecgs, "report": ["sinus rhythm. normal ecg."] * num_records}).to_parquet(str(path))
    return path


@pytest.mark.parametrize("case", ["11 lead names", "rate 0"])
def test_a_preparation_that_drops_every_record_fails_saying_how_many_and_why(case, tmp_path):
    table = ecg_table(tmp_path / "table.parquet")
    options = {"11 lead names": ["--sampling_rate", "500", "--lead_names", "I", "II", "III", "aVR", "aVL", "aVF",
                                 "V1", "V2", "V3", "V4", "V5"],
               "rate 0": ["--sampling_rate", "0"]}[case]
    reason = {"11 lead names": "3 ECG shape (12, 5000) has no axis of 11 leads",
              "rate 0": "3 invalid sampling rate 0.0"}[case]
    done = prepare("custom", "--raw_dir", table, "--output_dir", tmp_path / "out", "--num_workers", "1", *options,
                   cwd=tmp_path)
    assert_one_line_usage_error(done, "no record kept: 3 record(s) read, all dropped", reason)
    assert not (tmp_path / "out" / "dataset_dict.json").exists()  # nothing that load_from_disk would read as data
    summary = json.loads((tmp_path / "out" / "preparation_summary.json").read_text())
    assert sum(summary["dropped"].values()) == 3 and not summary["kept"]


def test_a_negative_synthetic_seed_is_refused_before_any_work(tmp_path):
    done = prepare("synthetic", "--output_dir", tmp_path / "out", "--num_records", "5", "--seed", "-1", cwd=tmp_path)
    assert_one_line_usage_error(done, "seed must be a non-negative integer, got -1")
    assert not (tmp_path / "out").exists()


def test_a_file_given_as_raw_dir_is_called_a_file(tmp_path):
    (tmp_path / "ptbxl.zip").write_bytes(b"PK\x03\x04")
    done = prepare("ptbxl", "--raw_dir", tmp_path / "ptbxl.zip", "--output_dir", tmp_path / "out", cwd=tmp_path)
    assert_one_line_usage_error(done, "raw_dir", "ptbxl.zip is a file, not a folder")
    done = prepare("ptbxl", "--raw_dir", tmp_path / "nowhere", "--output_dir", tmp_path / "out", cwd=tmp_path)
    assert_one_line_usage_error(done, "raw_dir does not exist", "nowhere")


@pytest.mark.parametrize("shard_size", ["0", "-5"])
def test_a_shard_size_below_one_is_a_usage_error(shard_size, tmp_path):
    done = prepare("synthetic", "--output_dir", tmp_path / "out", "--num_records", "5", "--shard_size", shard_size,
                   cwd=tmp_path)
    assert_one_line_usage_error(done, "--shard_size", f"must be a positive integer, got {shard_size}")
    table = ecg_table(tmp_path / "table.parquet")
    done = prepare("custom", "--raw_dir", table, "--output_dir", tmp_path / "out", "--sampling_rate", "500",
                   "--shard_size", shard_size, cwd=tmp_path)
    assert_one_line_usage_error(done, "--shard_size", "must be a positive integer")


def test_an_output_dir_that_is_a_file_or_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    done = prepare("synthetic", "--output_dir", tmp_path / "notes.txt", "--num_records", "5", cwd=tmp_path)
    assert_one_line_usage_error(done, "output_dir", "notes.txt is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me too")
    done = prepare("synthetic", "--output_dir", tmp_path / "mine", "--num_records", "5", cwd=tmp_path)
    assert_one_line_usage_error(done, "is not empty and holds no preparation manifest")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]


def test_a_binary_file_in_place_of_a_csv_is_named(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "reports.csv").write_bytes(b"\xff\xfe\x00\x89PNG\r\n\x1a\n\x00\x80")
    done = prepare("custom", "--raw_dir", tmp_path / "records", "--reports_csv", tmp_path / "reports.csv",
                   "--output_dir", tmp_path / "out", cwd=tmp_path)
    assert_one_line_usage_error(done, "reports.csv is not a UTF-8 CSV text file")
    raw = tmp_path / "ptbxl"
    raw.mkdir()
    (raw / "ptbxl_database.csv").write_bytes(bytes(range(256)))
    (raw / "scp_statements.csv").write_text("code,diagnostic\n")
    done = prepare("ptbxl", "--raw_dir", raw, "--output_dir", tmp_path / "out", cwd=tmp_path)
    assert_one_line_usage_error(done, "ptbxl_database.csv is not a readable CSV table")


def test_broken_wfdb_records_are_dropped_and_counted_by_reason(tmp_path):
    """A header whose sampling frequency is not a number, a truncated .dat, a header naming a missing .dat, a
    binary file in place of a header: each record is dropped with its reason; the good one is kept."""
    import numpy as np
    import pandas as pd
    import wfdb

    records = tmp_path / "records"
    records.mkdir()
    signal = (np.random.default_rng(0).standard_normal((5000, 12)) * 0.3)
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for name in ("good", "rate", "truncated", "missing", "binary"):
        wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=names, p_signal=signal, fmt=["16"] * 12,
                    write_dir=str(records))
    header = (records / "rate.hea").read_text().splitlines()
    fields = header[0].split()
    fields[2] = "fivehundred"
    (records / "rate.hea").write_text("\n".join([" ".join(fields), *header[1:]]) + "\n")
    data = (records / "truncated.dat").read_bytes()
    (records / "truncated.dat").write_bytes(data[: len(data) // 3])
    (records / "missing.dat").unlink()
    (records / "binary.hea").write_bytes(bytes(range(256)) * 4)
    pd.DataFrame({"record": ["good", "rate", "truncated", "missing", "binary"],
                  "report": ["sinus rhythm. normal ecg."] * 5}).to_csv(tmp_path / "reports.csv", index=False)
    done = prepare("custom", "--raw_dir", records, "--reports_csv", tmp_path / "reports.csv", "--output_dir",
                   tmp_path / "out", "--num_workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    summary = json.loads((tmp_path / "out" / "preparation_summary.json").read_text())
    assert sum(summary["kept"].values()) == 1
    dropped = {record: reason for reason, examples in summary["examples"].items() for record in examples}
    assert set(dropped) == {"rate", "truncated", "missing", "binary"}
    assert "header" in dropped["rate"] and "header" in dropped["binary"]
    assert dropped["truncated"].startswith("truncated signal file")
    assert dropped["missing"] == "missing signal file"


# ----------------------------------------------------------------------------------------------------------------------
# Issue 14: uploads while offline or with the Hub unreachable: one line, status 1 (was a 35-70 line traceback)


@pytest.fixture(scope="module")
def saved_model_and_dataset(tmp_path_factory):
    from datasets_scripts import synthetic
    from tamer_hf.testing_utils import tiny_model_and_processor

    folder = tmp_path_factory.mktemp("upload")
    model, processor = tiny_model_and_processor()
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    synthetic.generate(num_records=12, seed=0, output_dir=folder / "dataset")
    return folder / "model", folder / "dataset"


@pytest.mark.parametrize("what", ["model", "dataset"])
def test_an_upload_while_offline_is_one_line_and_status_1(what, saved_model_and_dataset):
    model, dataset = saved_model_and_dataset
    command = {"model": ["-m", "tamer_hf", "push", "--model", str(model), "--repo_id", "org/tamer-ecg"],
               "dataset": ["-m", "datasets_scripts.push", "--dataset_dir", str(dataset), "--repo_id", "org/ecgs"]}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, *command[what]], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"{'tamer push: ' if what == 'model' else ''}error: cannot reach the Hugging Face Hub (https://huggingface.co) "
        f"to upload {model if what == 'model' else dataset} to "
        f"{'org/tamer-ecg' if what == 'model' else 'the dataset repository org/ecgs'}: offline mode is on "
        "(HF_HUB_OFFLINE=1); unset it to upload"]


@pytest.mark.parametrize("what", ["model", "dataset"])
def test_an_upload_to_an_unreachable_hub_is_one_line_and_status_1(what, saved_model_and_dataset, monkeypatch, capsys):
    from huggingface_hub import constants

    import datasets_scripts.push
    import tamer_hf.commands.push

    model, dataset = saved_model_and_dataset
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the loopback discard port
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_token")
    if what == "model":
        status = run(tamer_hf.commands.push.main, ["--model", str(model), "--repo_id", "org/tamer-ecg"], "tamer push",
                     tamer_hf.commands.push.USER_ERRORS)
    else:
        status = run(datasets_scripts.push.main, ["--dataset_dir", str(dataset), "--repo_id", "org/ecgs"], "")
    assert status == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Hugging Face Hub (http://127.0.0.1:9) to upload" in lines[0], lines
    assert "Connection refused" in lines[0] or "connect" in lines[0].lower(), lines

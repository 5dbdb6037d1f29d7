"""`tamer eval` keeps what it computed and never overwrites by accident (issue 14): arguments are checked before the
model loads, an output folder with results is refused without --overwrite_output_dir, results.json is written
atomically and keeps the zero-shot results when the linear probe fails, and a CI is never a zero-width interval."""

import json
import os
import stat

import numpy as np
import pytest

from datasets_scripts import synthetic
from tamer_hf import evaluation
from tamer_hf.commands import run, zero_shot_eval
from tamer_hf.testing_utils import tiny_model_and_processor


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_outputs")
    model, processor = tiny_model_and_processor()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    synthetic.generate(num_records=40, seed=0).save_to_disk(root / "data")
    return root


def eval_args(workspace, output_dir, *extra):
    return ["--model", str(workspace / "model"), "--dataset", str(workspace / "data"), "--bootstrap", "0",
            "--output_dir", str(output_dir), *extra]


def test_an_output_folder_with_results_is_refused_without_overwrite(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    first = zero_shot_eval.main(eval_args(workspace, out))
    before = (out / "results.json").read_text()
    assert json.loads(before)["zero_shot"]["macro_auc"] == pytest.approx(first["zero_shot"]["macro_auc"])
    capsys.readouterr()  # the first run's progress bars

    assert run(zero_shot_eval.main, eval_args(workspace, out, "--seed", "1"), program="tamer eval",
               user_errors=zero_shot_eval.USER_ERRORS) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "already holds results (results.json, results.md)" in error[0]
    assert "--overwrite_output_dir" in error[0]
    assert (out / "results.json").read_text() == before

    zero_shot_eval.main(eval_args(workspace, out, "--seed", "1", "--overwrite_output_dir"))
    assert json.loads((out / "results.json").read_text())["bootstrap"]["seed"] == 1


def test_the_default_output_folder_is_protected_too(workspace, tmp_path):
    args = ["--model", str(workspace / "model"), "--dataset", str(workspace / "data"), "--bootstrap", "0"]
    zero_shot_eval.main(args)
    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        zero_shot_eval.main(args)
    zero_shot_eval.main(args + ["--overwrite_output_dir"])


def test_zero_shot_results_are_kept_when_the_linear_probe_fails(workspace, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "linear_probe").write_text("a file where the probe wants to save its heads")
    args = eval_args(workspace, out, "--linear_probe", "--probe_recipe", "sklearn")
    with pytest.raises(RuntimeError, match="the linear probe failed .*zero-shot results are kept in .*results.json"):
        zero_shot_eval.main(args)
    results = json.loads((out / "results.json").read_text())
    assert np.isfinite(results["zero_shot"]["macro_auc"])
    assert set(results["zero_shot"]["per_class"]) == set(results["prompts"]["prompts"])
    assert results["linear_probe"]["error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert "Linear probe failed" in (out / "results.md").read_text()
    assert sorted(os.listdir(out)) == ["linear_probe", "results.json", "results.md", "zero_shot_auc.png",
                                       "zero_shot_roc.png"]  # no temporary file left behind


@pytest.mark.parametrize("extra, message", [
    (["--hypothesis_template", "an ecg"], "exactly once"),
    (["--hypothesis_template", "{label}"], "not a template"),
    (["--probe_recipe", "merl"], "--probe_recipe needs --linear_probe"),
    (["--domain_mapping", "mapping.json"], "--domain_mapping needs --domain_shift"),
    (["--batch_size", "0"], "--batch_size must be positive"),
    (["--bootstrap", "-1"], "--bootstrap must not be negative"),
])
def test_bad_arguments_are_usage_errors(workspace, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        zero_shot_eval.main(eval_args(workspace, tmp_path / "out", *extra))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_task_is_refused_for_a_dataset_that_is_not_ptbxl(workspace, tmp_path, capsys):
    argv = eval_args(workspace, tmp_path / "out", "--task", "rhythm")
    assert run(zero_shot_eval.main, argv, program="tamer eval", user_errors=zero_shot_eval.USER_ERRORS) == 2
    assert "--task rhythm only applies to PTB-XL" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_classes_without_a_packaged_description_are_named_in_a_warning(workspace, tmp_path):
    prompts = zero_shot_eval.PromptSource(None)
    with pytest.warns(UserWarning, match=r"no text for \['NEWCLASS'\] \(synthetic\)"):
        texts = prompts.prompts("synthetic", ["AFIB", "NEWCLASS"], "{}")
    assert texts[1] == "newclass" and texts[0] != "afib"


@pytest.mark.parametrize("model, output_dir, message", [
    ("missing_model", None, "no such model folder"),
    ("./missing_model", None, "no such model folder"),
    ("data", None, "has no config.json"),
    ("model", "a_file", "is a file, not a folder"),
])
def test_bad_model_and_output_paths_end_with_one_line(workspace, tmp_path, capsys, model, output_dir, message):
    (tmp_path / "a_file").write_text("x")
    model_path = model if model.startswith(".") else str(workspace / model)
    out = str(tmp_path / (output_dir or "out"))
    argv = ["--model", model_path, "--dataset", str(workspace / "data"), "--output_dir", out]
    assert run(zero_shot_eval.main, argv, program="tamer eval", user_errors=zero_shot_eval.USER_ERRORS) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error


# ----------------------------------------------------------------------------------------------------------------------
# results.json written atomically


def test_a_failed_write_leaves_the_previous_results_intact(tmp_path):
    good = {"label_set": "synthetic", "method": "M", "zero_shot": {"macro_auc": 0.7, "per_class": {"A": 0.7},
                                                                    "n_positive": {"A": 3}}}
    json_path, _ = evaluation.save_results(good, tmp_path)
    broken = dict(good, extra=object())  # not JSON-serialisable: fails half-way in a plain `json.dump` to the file
    with pytest.raises(TypeError):
        evaluation.save_results(broken, tmp_path)
    assert json.loads(open(json_path).read()) == good
    assert sorted(os.listdir(tmp_path)) == ["results.json", "results.md"]
    assert stat.S_IMODE(os.stat(json_path).st_mode) == 0o644


# ----------------------------------------------------------------------------------------------------------------------
# Bootstrap CI


def test_a_two_record_split_gets_no_confidence_interval():
    y_true = np.array([[1, 0], [0, 1]])
    scores = np.array([[0.9, 0.2], [0.1, 0.8]])
    with pytest.warns(UserWarning, match=r"95 % CI omitted: class\(es\) \['A', 'B'\] have fewer than 2 positives"):
        result = evaluation.evaluate_scores(y_true, scores, ["A", "B"], num_bootstrap=200)
    assert "ci95" not in result and "fewer than 2" in result["ci95_omitted"]
    assert result["macro_auc"] == 1.0
    table = evaluation.results_to_markdown({"label_set": "x", "zero_shot": result})
    assert "| 100.00 |" in table and "–" not in table.split("\n")[2]


def test_a_zero_width_interval_is_omitted():
    # every resample that keeps both label values ranks the positives first: the macro-AUC is always 1.0
    y_true = np.array([[1], [1], [0], [0], [0]])
    scores = np.array([[0.9], [0.8], [0.3], [0.2], [0.1]])
    with pytest.warns(UserWarning, match="zero-width interval"):
        result = evaluation.evaluate_scores(y_true, scores, ["A"], num_bootstrap=100)
    assert "ci95" not in result and "zero-width" in result["ci95_omitted"]


def test_enough_cases_get_a_real_interval():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(200, 3))
    scores = y_true + rng.normal(scale=1.0, size=(200, 3))
    result = evaluation.evaluate_scores(y_true, scores, ["A", "B", "C"], num_bootstrap=200)
    assert result["ci95"]["low"] < result["macro_auc"] < result["ci95"]["high"]
    assert "ci95_omitted" not in result


def test_linear_probe_without_a_train_split_is_refused_before_the_zero_shot_work(workspace, tmp_path, capsys):
    from datasets import load_from_disk

    data = load_from_disk(str(workspace / "data"))
    del data["train"]
    data.save_to_disk(str(tmp_path / "no_train"))
    capsys.readouterr()  # datasets' progress bars
    argv = ["--model", str(workspace / "model"), "--dataset", str(tmp_path / "no_train"), "--bootstrap", "0",
            "--output_dir", str(tmp_path / "out"), "--linear_probe"]
    assert run(zero_shot_eval.main, argv, program="tamer eval", user_errors=zero_shot_eval.USER_ERRORS) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"tamer eval: error: --linear_probe --probe_recipe clean needs the train and validation splits; "
                     f"{tmp_path / 'no_train'} has no (or an empty) train."]
    assert not (tmp_path / "out").exists()  # refused before any zero-shot work or output


def test_a_saved_empty_split_is_named_not_a_datasets_traceback(workspace, tmp_path, capsys):
    from datasets import load_from_disk

    data = load_from_disk(str(workspace / "data"))
    data["train"] = data["train"].select([])
    data.save_to_disk(str(tmp_path / "empty_train"))
    capsys.readouterr()  # datasets' progress bars
    argv = ["--model", str(workspace / "model"), "--dataset", str(tmp_path / "empty_train"), "--bootstrap", "0",
            "--output_dir", str(tmp_path / "out"), "--linear_probe"]
    assert run(zero_shot_eval.main, argv, program="tamer eval", user_errors=zero_shot_eval.USER_ERRORS) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "the split(s) ['train'] hold no records" in error[0], error
    assert not (tmp_path / "out").exists()

"""Issue 14: bad command-line arguments for every `tamer` command end with at most three lines on stderr naming the
problem (argparse's errors: where the options are listed and the error, not the whole usage block), exit status 2,
no traceback, and before any heavy work. Called through `tamer_hf.cli.main` in this process (the console script's
code); a few go through a fresh `python -m tamer_hf` to show the same from the outside."""

import os
import subprocess
import sys

import pytest

from tamer_hf import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = "/nonexistent/tamer-test-path"

BAD_ARGUMENTS = {  # case: (argv, what stderr must name)
    # tamer pretrain
    "pretrain unknown option": (["pretrain", "--bogus"], "unrecognized arguments: --bogus"),
    "pretrain unknown family": (["pretrain", "--model_type", "gpt"], "Unknown model_type 'gpt'; choose one of"),
    "pretrain unknown preset": (["pretrain", "--model_preset", "huge"], "argument --model_preset: invalid choice"),
    "pretrain text steps": (["pretrain", "--max_steps", "ten"], "argument --max_steps: invalid int value: 'ten'"),
    "pretrain text learning rate": (["pretrain", "--learning_rate", "fast"], "argument --learning_rate: invalid float"),
    "pretrain prompt style": (["pretrain", "--zero_shot_prompts", "acronym"], "--zero_shot_prompts: invalid choice"),
    "pretrain template without {}": (["pretrain", "--output_dir", MISSING, "--zero_shot_template", "an ecg"],
                                     "--zero_shot_template 'an ecg' must contain '{}' exactly once"),
    "pretrain missing dataset": (["pretrain", "--output_dir", MISSING, "--dataset", MISSING], MISSING),
    "pretrain unknown tracker": (["pretrain", "--output_dir", MISSING, "--report_to", "nosuchtracker"],
                                 "nosuchtracker"),
    # tamer eval
    "eval no arguments": (["eval"], "the following arguments are required: --model, --dataset"),
    "eval missing model": (["eval", "--model", MISSING, "--dataset", MISSING], "no such model folder"),
    "eval batch size 0": (["eval", "--model", "m", "--dataset", "d", "--batch_size", "0"],
                          "--batch_size must be positive, got 0"),
    "eval negative max_records": (["eval", "--model", "m", "--dataset", "d", "--max_records", "-3"],
                                  "--max_records must be positive, got -3"),
    "eval negative bootstrap": (["eval", "--model", "m", "--dataset", "d", "--bootstrap", "-1"],
                                "--bootstrap must not be negative"),
    "eval text seed": (["eval", "--model", "m", "--dataset", "d", "--seed", "x"], "argument --seed: invalid int"),
    "eval probe recipe alone": (["eval", "--model", "m", "--dataset", "d", "--probe_recipe", "merl"],
                                "--probe_recipe needs --linear_probe"),
    "eval unknown probe recipe": (["eval", "--model", "m", "--dataset", "d", "--linear_probe", "--probe_recipe",
                                   "svm"], "argument --probe_recipe: invalid choice: 'svm'"),
    "eval mapping without targets": (["eval", "--model", "m", "--dataset", "d", "--domain_mapping", "x.json"],
                                     "--domain_mapping needs --domain_shift"),
    "eval template without {}": (["eval", "--model", "m", "--dataset", "d", "--hypothesis_template", "ecg"],
                                 "must contain '{}' exactly once"),
    "eval template with a named field": (["eval", "--model", "m", "--dataset", "d", "--hypothesis_template",
                                          "{label}"], "is not a template with one '{}'"),
    "eval unknown prompt style": (["eval", "--model", "m", "--dataset", "d", "--prompt_style", "acronym"],
                                  "argument --prompt_style: invalid choice: 'acronym'"),
    # tamer finetune
    "finetune no arguments": (["finetune"], "the following arguments are required: --model, --dataset, --output_dir"),
    "finetune unknown recipe": (["finetune", "--model", "m", "--dataset", "d", "--output_dir", MISSING, "--recipe",
                                 "best"], "argument --recipe: invalid choice: 'best'"),
    "finetune fraction above 1": (["finetune", "--model", "m", "--dataset", "d", "--output_dir", MISSING,
                                   "--train_fraction", "2"], "--train_fraction"),
    "finetune text epochs": (["finetune", "--model", "m", "--dataset", "d", "--output_dir", MISSING,
                              "--num_train_epochs", "many"], "argument --num_train_epochs: invalid int value"),
    "finetune unknown optimizer": (["finetune", "--model", "m", "--dataset", "d", "--output_dir", MISSING,
                                    "--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
    "finetune unknown precision": (["finetune", "--model", "m", "--dataset", "d", "--output_dir", MISSING,
                                    "--mixed_precision", "fp8"], "argument --mixed_precision: invalid choice"),
    "finetune missing model": (["finetune", "--model", MISSING, "--dataset", MISSING, "--output_dir", MISSING],
                               MISSING),
    # tamer prepare
    "prepare no source": (["prepare"], "prepare"),
    "prepare unknown source": (["prepare", "mitbih"], "mitbih"),
    "prepare synthetic no output": (["prepare", "synthetic"], "the following arguments are required: --output_dir"),
    "prepare synthetic 0 records": (["prepare", "synthetic", "--output_dir", MISSING, "--num_records", "0"],
                                    "--num_records: must be a positive integer, got 0"),
    "prepare shard size 0": (["prepare", "synthetic", "--output_dir", MISSING, "--shard_size", "0"],
                             "--shard_size: must be a positive integer, got 0"),
    "prepare negative seed": (["prepare", "synthetic", "--output_dir", MISSING, "--num_records", "5", "--seed", "-1"],
                              "seed must be a non-negative integer, got -1"),
    "prepare unknown verbosity": (["prepare", "synthetic", "--output_dir", MISSING, "--verbosity", "loud"],
                                  "argument --verbosity: invalid choice: 'loud'"),
    "prepare ptbxl missing raw_dir": (["prepare", "ptbxl", "--raw_dir", MISSING, "--output_dir", MISSING + "-out"],
                                      "raw_dir does not exist"),
    "prepare ptbxl no raw_dir": (["prepare", "ptbxl", "--output_dir", MISSING], "--raw_dir"),
    "prepare csn unknown label set": (["prepare", "csn", "--raw_dir", MISSING, "--output_dir", MISSING,
                                       "--label_set", "sb"], "argument --label_set: invalid choice: 'sb'"),
    "prepare custom text rate": (["prepare", "custom", "--raw_dir", MISSING, "--output_dir", MISSING,
                                  "--sampling_rate", "fast"], "--sampling_rate"),
    # tamer push
    "push no arguments": (["push"], "the following arguments are required: --model, --repo_id"),
    "push missing folder": (["push", "--model", MISSING, "--repo_id", "org/x"], "has no config.json"),
    "push unknown option": (["push", "--model", "m", "--repo_id", "org/x", "--public"],
                            "unrecognized arguments: --public"),
    # tamer demo
    "demo text port": (["demo", "--port", "http"], "argument --port: invalid int value: 'http'"),
    "demo no model": (["demo"], "the following arguments are required: --model"),
    "demo unknown option": (["demo", "--model", "m", "--share-link"], "unrecognized arguments: --share-link"),
    # the console script itself
    "unknown command": (["train"], "unknown command 'train'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_a_short_usage_error(case, capsys):
    argv, fragment = BAD_ARGUMENTS[case]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    if argv[0] != "train":  # an unknown command also lists the commands, as `tamer` alone does
        assert 1 <= len(err.strip().splitlines()) <= 3, err
    assert fragment in err, err
    assert not os.path.exists(MISSING) and not os.path.exists(MISSING + "-out")


@pytest.mark.parametrize("argv, fragment", [
    (["pretrain", "--max_steps", "ten"], "argument --max_steps: invalid int value: 'ten'"),
    (["eval", "--model", MISSING, "--dataset", MISSING], "no such model folder"),
    (["prepare", "synthetic", "--output_dir", MISSING, "--shard_size", "0"], "must be a positive integer, got 0"),
])
def test_the_console_command_prints_the_same_in_a_fresh_process(argv, fragment):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-m", "tamer_hf", *argv], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and fragment in lines[-1], lines

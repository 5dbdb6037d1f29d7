"""CG-DMER through `examples/pretrain.py`: a short quick-size run learns zero-shot diagnosis, the paper's four Table 3
variants each train and reload, custom Parquet data trains, bad options are named, and a run killed after a
checkpoint resumes exactly."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from transformers import AutoModel

import tamer_hf  # noqa: F401 (registers the families with the Auto classes)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "examples", "pretrain.py")
TINY_RUN = ["--model_type", "cgdmer", "--model_size", "tiny", "--synthetic_records", "120", "--batch_size", "8",
            "--max_steps", "2", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none",
            "--cgdmer_local_vocab_size", "300"]


def pretrain_in_process(*argv):
    """`examples/pretrain.py`'s main() with these arguments, in this process (no interpreter start-up per run)."""
    spec = importlib.util.spec_from_file_location("pretrain_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.main(list(argv))


# A short run of the quick start (150 of its 800 steps, 1500 of its 4000 records) with a fixed word-level vocabulary.
# Measured on this run: 0.707 held-out macro-AUC, the same in repeated runs (the full quick start: 0.85); chance 0.5.
AUC_FLOOR = 0.65
SHORT_QUICK_RUN = ["--model_type", "cgdmer", "--model_preset", "cgdmer-quick", "--synthetic_records", "1500",
                   "--max_steps", "150", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none"]


def word_level_tokenizer(folder, texts) -> str:
    """Every word of `texts` (and the clinical statements) in sorted order: a trained WordPiece vocabulary differs
    from run to run, which moves a short run's AUC by a few hundredths; this one is the same every time."""
    import re

    from transformers import BertTokenizer

    from tamer_hf.text import CLINICAL_STATEMENTS, SPECIAL_TOKENS

    words = sorted(set(re.findall(r"\w+|[^\w\s]", " ".join([*CLINICAL_STATEMENTS, *texts]).lower())))
    BertTokenizer(vocab={word: index for index, word in enumerate(SPECIAL_TOKENS + words)}).save_pretrained(str(folder))
    return str(folder)


def test_a_short_quick_run_learns_zero_shot_diagnosis(tmp_path):
    from datasets_scripts import synthetic

    reports = synthetic.generate(num_records=1500, seed=42)["train"]["report"]
    tokenizer = word_level_tokenizer(tmp_path / "tokenizer", reports)
    summary = pretrain_in_process(*SHORT_QUICK_RUN, "--tokenizer", tokenizer, "--output_dir", str(tmp_path / "run"))
    assert summary["completed_steps"] == 150 and summary["model_preset"] == "cgdmer-quick"
    assert summary["loss_terms"] == ["siglip", "ecg_reconstruction", "mlm", "disentanglement"]
    assert summary["test"]["num_records"] >= 150
    assert summary["test"]["macro_auc"] >= AUC_FLOOR, summary["test"]


@pytest.mark.parametrize("preset, terms", [
    ("cgdmer-v1", ["siglip"]),
    ("cgdmer-v2", ["siglip", "ecg_reconstruction"]),
    ("cgdmer-v3", ["siglip", "ecg_reconstruction", "mlm"]),
    ("cgdmer-v4", ["siglip", "ecg_reconstruction", "mlm", "disentanglement"]),
])
def test_each_table_3_variant_trains_through_the_script_and_reloads(preset, terms, tmp_path):
    summary = pretrain_in_process(*TINY_RUN, "--model_preset", preset, "--output_dir", str(tmp_path))
    assert summary["completed_steps"] == 2 and summary["loss_terms"] == terms
    model = AutoModel.from_pretrained(tmp_path)
    assert model.config.enabled_losses == terms and model.config.hidden_size == 16  # the variant at tiny size
    saved = load_file(tmp_path / "model.safetensors")
    assert all(key in saved for key in model.state_dict() if "num_batches_tracked" not in key)
    assert any(key.startswith("ecg_specific_encoder.") for key in saved) == ("disentanglement" in terms)


def test_pretraining_on_a_custom_parquet_dataset(tmp_path):
    from datasets_scripts import synthetic

    table = synthetic.generate(num_records=40, seed=5)["train"].select_columns(["ecg", "report"])
    table.rename_columns({"ecg": "signal", "report": "text"}).to_parquet(str(tmp_path / "mine.parquet"))
    summary = pretrain_in_process(
        "--model_type", "cgdmer", "--dataset", str(tmp_path / "mine.parquet"), "--ecg_column", "signal",
        "--report_column", "text", "--sampling_rate", "500", "--text_encoder", "local", "--model_preset",
        "cgdmer-tiny", "--batch_size", "8", "--max_steps", "2", "--cgdmer_local_vocab_size", "300",
        "--output_dir", str(tmp_path / "run"), "--report_to", "none")
    assert summary["completed_steps"] == 2 and summary["train_records"] == len(table)
    assert "test" not in summary  # unlabelled data: nothing to score
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "README.md").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--model_preset", "cgdmer-v1", "--no_siglip"], "every loss term"),
    (["--mask_ratio", "0.2"], "more than mask_ratio"),
    (["--patch_size", "300"], "patch_size"),
    (["--cgdmer_local_vocab_size", "0"], "--cgdmer_local_vocab_size must be positive"),
])
def test_bad_options_are_named(argv, message):
    from tamer_hf.training import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args(["--model_type", "cgdmer", *argv])


def test_quick_start_and_paper_defaults():
    from tamer_hf.training import parse_args

    quick, paper = parse_args(["--model_type", "cgdmer"]), parse_args(["--model_type", "cgdmer", "--dataset", "x"])
    assert (quick.model_preset, quick.text_encoder, quick.dataset) == ("cgdmer-quick", "local", None)
    assert (paper.model_preset, paper.text_encoder) == ("cgdmer-paper", "ncbi/MedCPT-Query-Encoder")
    assert (paper.global_batch_size, paper.num_train_epochs, paper.learning_rate) == (256, 50, 2e-4)


# ----------------------------------------------------------------------------------------------------------------------
# Kill and resume (the pattern of tests/test_training_resume.py, at tiny size)

# 48 training records / (8 x 2) -> 3 optimizer steps per epoch; a checkpoint at 2; killed after step 3
RESUME_RUN = ["--model_type", "cgdmer", "--model_preset", "cgdmer-tiny", "--synthetic_records", "60",
              "--batch_size", "8", "--gradient_accumulation_steps", "2", "--max_steps", "5", "--checkpointing_steps",
              "2", "--eval_steps", "0", "--logging_steps", "1", "--report_to", "none", "--seed", "7"]


def pretrain_subprocess(*extra, expect_kill=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, SCRIPT, *RESUME_RUN, *extra], env=env, capture_output=True, text=True,
                          timeout=600)
    if expect_kill:
        assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(path) -> dict[int, float]:
    with open(path) as handle:
        return {row["step"]: row["loss"] for row in map(json.loads, handle)}  # a re-run step overwrites


def test_a_killed_run_resumes_exactly(tmp_path):
    from datasets_scripts import synthetic
    from tamer_hf.text import train_report_tokenizer

    # one vocabulary for both runs: a trained WordPiece vocabulary differs from run to run
    reports = synthetic.generate(60, seed=7)["train"]["report"]
    train_report_tokenizer(reports, vocab_size=300).save_pretrained(str(tmp_path / "tokenizer"))
    tokenizer = ["--tokenizer", str(tmp_path / "tokenizer")]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    pretrain_subprocess(*tokenizer, "--output_dir", str(straight), "--save_every_loss",
                        str(tmp_path / "straight.jsonl"))
    pretrain_subprocess(*tokenizer, "--output_dir", str(killed), "--save_every_loss", str(tmp_path / "killed.jsonl"),
                        "--simulate_kill_at_step", "3", expect_kill=True)
    assert sorted(losses(tmp_path / "killed.jsonl")) == [1, 2, 3]
    assert sorted(os.listdir(killed / "checkpoints")) == ["step_2"] and not (killed / "model.safetensors").exists()
    resumed = pretrain_subprocess(*tokenizer, "--output_dir", str(killed), "--save_every_loss",
                                  str(tmp_path / "resumed.jsonl"), "--resume_from_checkpoint", "latest")
    assert "Resumed from" in resumed.stdout + resumed.stderr
    before, after = losses(tmp_path / "straight.jsonl"), losses(tmp_path / "resumed.jsonl")
    assert sorted(after) == [3, 4, 5]  # continues at step 3, across the epoch boundary after step 3
    for step in after:
        assert abs(after[step] - before[step]) <= 1e-6, (step, after[step], before[step])
    assert len(set(before.values())) == len(before)  # the losses really change from step to step
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-5

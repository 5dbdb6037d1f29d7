"""Kill-and-resume is exact for every family whose collator or model draws at random (masks, negatives): a run
killed after a checkpoint and resumed with `--resume_from_checkpoint latest` repeats the losses of the uninterrupted
run step by step and ends with the same weights. TAMER's own run is checked in tests/test_training_resume.py.

The runs go through `examples/pretrain.py` in subprocesses (SIGKILL ends the process). Accelerate's DataLoader
fetches the next batch before a step ends, so the collator's draws for step k+1 happen before the checkpoint of step
k: the loop seeds each batch's draws from the batch itself (`training.BatchSeededCollator`), which this test needs.
"""

import os

import pytest
from safetensors.torch import load_file

from tamer_hf.testing_utils import pretrain_subprocess as run_pretrain
from tamer_hf.testing_utils import step_losses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 48 training records / (8 x 2) -> 3 optimizer steps per epoch; a checkpoint at 2; killed after step 3
COMMON = ["--synthetic_records", "60", "--batch_size", "8", "--gradient_accumulation_steps", "2", "--max_steps", "5",
          "--checkpointing_steps", "2", "--eval_steps", "0", "--logging_steps", "1", "--report_to", "none",
          "--seed", "7"]
FAMILIES = {
    # C-MELT: lead masking on (the quick preset turns it off), N3S negatives, MLM and MEM masks drawn by the collator
    "cmelt": ["--model_type", "cmelt", "--model_preset", "cmelt-tiny"],
    # CG-DMER: the spatio-temporal ECG mask and the MLM corruption drawn in the model's forward
    "cgdmer": ["--model_type", "cgdmer", "--model_preset", "cgdmer-tiny"],
}


def fixed_tokenizer(model_type: str, folder) -> list[str]:
    """One vocabulary for both runs (a trained WordPiece / Unigram vocabulary differs from run to run)."""
    from datasets_scripts import synthetic
    from tamer_hf.families import get_family
    from tamer_hf.training import parse_args

    reports = synthetic.generate(60, seed=7)["train"]["report"]
    args = parse_args(FAMILIES[model_type] + [f"--{model_type}_local_vocab_size", "300"])
    get_family(model_type).train_tokenizer(reports, args).save_pretrained(str(folder))
    return ["--tokenizer", str(folder)]


def pretrain_subprocess(argv, expect_kill=False):
    return run_pretrain(COMMON + argv, cwd=REPO, expect_kill=expect_kill)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_a_killed_run_resumes_exactly(model_type, tmp_path):
    argv = FAMILIES[model_type] + fixed_tokenizer(model_type, tmp_path / "tokenizer")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    pretrain_subprocess(argv + ["--output_dir", str(straight), "--save_every_loss", str(tmp_path / "straight.jsonl")])
    pretrain_subprocess(argv + ["--output_dir", str(killed), "--save_every_loss", str(tmp_path / "killed.jsonl"),
                                "--simulate_kill_at_step", "3"], expect_kill=True)
    assert sorted(step_losses(tmp_path / "killed.jsonl")) == [1, 2, 3]
    assert sorted(os.listdir(killed / "checkpoints")) == ["step_2"] and not (killed / "model.safetensors").exists()
    resumed = pretrain_subprocess(argv + ["--output_dir", str(killed), "--save_every_loss",
                                          str(tmp_path / "resumed.jsonl"), "--resume_from_checkpoint", "latest"])
    assert "Resumed from" in resumed.stdout + resumed.stderr
    before, after = step_losses(tmp_path / "straight.jsonl"), step_losses(tmp_path / "resumed.jsonl")
    assert sorted(after) == [3, 4, 5]  # continues at step 3, across the epoch boundary after step 3
    for step in after:
        assert abs(after[step] - before[step]) <= 1e-6, (step, after[step], before[step])
    assert len(set(before.values())) == len(before)  # the losses really change from step to step
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-5


def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one(tmp_path):
    argv = FAMILIES["cgdmer"] + fixed_tokenizer("cgdmer", tmp_path / "tokenizer")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    pretrain_subprocess(argv + ["--output_dir", str(straight), "--save_every_loss", str(tmp_path / "straight.jsonl")])
    # killed after the model state of step 4 is written, before its checkpoint is complete
    pretrain_subprocess(argv + ["--output_dir", str(killed), "--simulate_kill_in_checkpoint", "4"], expect_kill=True)
    assert sorted(os.listdir(killed / "checkpoints")) == ["step_2", "step_4.incomplete"]
    assert (killed / "checkpoints" / "step_4.incomplete" / "model.safetensors").is_file()
    resumed = pretrain_subprocess(argv + ["--output_dir", str(killed), "--save_every_loss",
                                          str(tmp_path / "resumed.jsonl"), "--resume_from_checkpoint", "latest"])
    log = resumed.stdout + resumed.stderr
    assert "skipping" in log and "step_4.incomplete" in log and "did not finish" in log
    assert "Resumed from" in log and "step_2" in log
    before, after = step_losses(tmp_path / "straight.jsonl"), step_losses(tmp_path / "resumed.jsonl")
    assert sorted(after) == [3, 4, 5]
    for step in after:
        assert abs(after[step] - before[step]) <= 1e-6, (step, after[step], before[step])
    # the rewritten step 4 replaced the unfinished folder; no partial folder is left
    assert sorted(os.listdir(killed / "checkpoints")) == ["step_2", "step_4"]

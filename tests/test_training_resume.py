"""A run killed (SIGKILL) after a checkpoint and resumed with `--resume_from_checkpoint latest` continues exactly:
the losses of the following steps equal those of an uninterrupted run (model, optimizer, scheduler, RNG, data
position restored), across an epoch boundary, with gradient accumulation, dropout (UECR) and BatchNorm in train mode.
"""

import os

import pytest
from safetensors.torch import load_file

from tamer_hf.testing_utils import pretrain_subprocess, step_losses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ~160 training records / (16 x 2) -> 5 optimizer steps per epoch; checkpoints at 3 and 6; killed after step 4
RUN = ["--synthetic_records", "200", "--batch_size", "16", "--gradient_accumulation_steps", "2", "--max_steps", "8",
       "--checkpointing_steps", "3", "--eval_steps", "0", "--logging_steps", "1", "--report_to", "jsonl",
       "--model_preset", "tiny", "--local_text_hidden_size", "32", "--seed", "7"]


def pretrain(*extra, expect_kill=False):
    return pretrain_subprocess([*RUN, *extra], cwd=REPO, expect_kill=expect_kill, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    # one vocabulary for both runs: a trained WordPiece vocabulary differs from run to run
    from datasets_scripts import synthetic
    from tamer_hf.text import train_report_tokenizer

    train_report_tokenizer(synthetic.generate(200, seed=7)["train"]["report"]).save_pretrained(str(root / "tokenizer"))
    RUN.extend(["--tokenizer", str(root / "tokenizer")])
    straight, killed = root / "straight", root / "killed"
    pretrain("--output_dir", str(straight), "--save_every_loss", str(root / "straight.jsonl"))
    pretrain("--output_dir", str(killed), "--save_every_loss", str(root / "killed.jsonl"),
             "--simulate_kill_at_step", "4", expect_kill=True)
    killed_steps = sorted(step_losses(root / "killed.jsonl"))
    checkpoints = sorted(os.listdir(killed / "checkpoints"))
    saved_before_resume = (killed / "model.safetensors").exists()
    resumed = pretrain("--output_dir", str(killed), "--save_every_loss", str(root / "resumed.jsonl"),
                       "--resume_from_checkpoint", "latest")
    return dict(root=root, straight=straight, killed=killed, killed_steps=killed_steps, checkpoints=checkpoints,
                saved_before_resume=saved_before_resume,
                resumed_stdout=resumed.stdout + resumed.stderr)


def test_the_killed_run_stopped_after_its_checkpoint(runs):
    assert runs["killed_steps"] == [1, 2, 3, 4]
    assert runs["checkpoints"] == ["step_3"]
    assert not runs["saved_before_resume"]  # killed before the final save
    assert "Resumed from" in runs["resumed_stdout"] and "step 3" in runs["resumed_stdout"]


def test_resumed_run_repeats_the_losses_of_the_uninterrupted_run(runs):
    straight, resumed = step_losses(runs["root"] / "straight.jsonl"), step_losses(runs["root"] / "resumed.jsonl")
    assert sorted(resumed) == [4, 5, 6, 7, 8]  # continues at step 4, crosses the epoch boundary after step 5
    for step in resumed:
        assert abs(resumed[step] - straight[step]) <= 1e-6, (step, resumed[step], straight[step])
    assert len(set(straight.values())) == len(straight)  # the losses really change from step to step


def test_resumed_run_ends_with_the_same_weights(runs):
    a, b = load_file(runs["straight"] / "model.safetensors"), load_file(runs["killed"] / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-5


def test_checkpoints_are_rotated_and_complete(runs):
    names = sorted(os.listdir(runs["straight"] / "checkpoints"))
    assert names == ["step_3", "step_6"]
    for name in names:
        files = set(os.listdir(runs["straight"] / "checkpoints" / name))
        assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json", "processor"} <= files

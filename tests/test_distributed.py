"""Two CPU processes give the same contrastive loss and gradients as one process holding the doubled batch.

The property tested is the *gathered* contrastive loss (`tamer_hf.distributed.gather_with_grad` + the model's
local-rows-against-global-batch InfoNCE, under DDP gradient averaging). To isolate it, the model runs in eval mode with
`return_loss=True`: BatchNorm then uses its running statistics and UECR's dropout is off. In train mode the per-process
BN batch statistics and dropout masks necessarily differ from a single process's (SyncBatchNorm does not run on CPU),
so no exact equality could hold there. The comparison runs in float64: in float32 the summation order alone moves a
gradient of 0.5 by about 1e-5, the tolerance of the check.

This file is also the worker: `accelerate launch tests/test_distributed.py --worker OUT --per_process N`.
"""

import argparse
import json
import os
import re

import pytest
import torch

from tamer_hf.testing_utils import accelerate_launch, arm_hang_timeout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 8


def worker(out: str, per_process: int) -> None:
    import numpy as np
    from accelerate import Accelerator

    from datasets_scripts.synthetic import iter_records
    from transformers import BertTokenizer

    from tamer_hf import TamerFeatureExtractor, TamerModel, TamerProcessor
    from tamer_hf.testing_utils import tiny_config
    from tamer_hf.text import SPECIAL_TOKENS
    from tamer_hf.distributed import end_training
    from tamer_hf.training import gather_with_grad, training_loss

    accelerator = Accelerator()
    records = list(iter_records(GLOBAL_BATCH, seed=3))
    reports = [report for _, report, _ in records]
    reports[1] = reports[0]  # one duplicate report, so the duplicate masking crosses the process boundary
    # the same vocabulary in every launch (trained WordPiece vocabularies vary from run to run)
    words = SPECIAL_TOKENS + sorted(set(re.findall(r"\w+|[^\w\s]", " ".join(reports))))
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    torch.manual_seed(0)
    model = TamerModel(tiny_config(tokenizer)).double().eval()  # float64: float32 rounding is ~1e-5 here
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer, max_text_length=64)
    rows = slice(accelerator.process_index * per_process, (accelerator.process_index + 1) * per_process)
    ecg = np.stack([signal for signal, _, _ in records])[rows]
    batch = dict(processor(ecg=ecg, text=reports[rows], sampling_rate=500))
    batch["input_values"] = batch["input_values"].double()
    batch["report_ids"] = torch.tensor([reports.index(text) for text in reports])[rows]
    model = accelerator.prepare(model)
    gather = gather_with_grad if accelerator.num_processes > 1 else None
    loss, parts = training_loss(model, batch, gather)  # report_ids in the batch: duplicate reports masked
    accelerator.backward(loss)  # DDP averages the gradients over processes
    mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
    parts = {term: accelerator.reduce(torch.tensor(value), reduction="mean").item() for term, value in parts.items()}
    if accelerator.is_main_process:
        grads = {name: p.grad.detach().clone() for name, p in accelerator.unwrap_model(model).named_parameters()
                 if p.grad is not None}
        torch.save({"loss": mean_loss, "parts": parts, "grads": grads, "num_processes": accelerator.num_processes,
                    "processes_on_this_machine": int(os.environ.get("LOCAL_WORLD_SIZE", 1))}, out)
    accelerator.wait_for_everyone()
    model = None  # DDP's reducer dies before the process group (tamer_hf.distributed.end_training)
    end_training(accelerator)


def launch(out, num_processes: int, per_process: int):
    done = accelerate_launch(num_processes, [__file__, "--worker", out, "--per_process", per_process], cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def one_and_two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    single = launch(folder / "one.pt", 1, GLOBAL_BATCH)
    double = launch(folder / "two.pt", 2, GLOBAL_BATCH // 2)
    return single, double


def test_two_processes_really_ran(one_and_two_processes):
    single, double = one_and_two_processes
    assert single["num_processes"] == 1 and double["num_processes"] == 2


def test_two_processes_give_the_loss_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert abs(single["loss"] - double["loss"]) <= 1e-5, (single["loss"], double["loss"])
    assert set(single["parts"]) == {"rlca", "uecr", "rada", "rgwr"}
    for term, value in single["parts"].items():
        assert abs(value - double["parts"][term]) <= 1e-5, (term, value, double["parts"][term])


def test_two_processes_give_the_gradients_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert set(single["grads"]) == set(double["grads"]) and len(single["grads"]) > 20
    worst = max((single["grads"][name] - double["grads"][name]).abs().max().item() for name in single["grads"])
    assert worst <= 1e-5, worst
    # and the test is not vacuous: the gradients are far from zero
    assert max(grad.abs().max().item() for grad in single["grads"].values()) > 1e-3


def test_two_machines_of_one_process_give_the_loss_and_gradients_of_the_doubled_batch(one_and_two_processes,
                                                                                    tmp_path):
    """Multi-node in miniature: `accelerate launch --num_machines 2 --machine_rank 0|1 --main_process_ip 127.0.0.1`,
    one process per "machine", both on localhost."""
    single, _ = one_and_two_processes
    done = accelerate_launch(2, [__file__, "--worker", tmp_path / "nodes.pt", "--per_process", GLOBAL_BATCH // 2],
                             cwd=REPO, num_machines=2)
    assert done.returncode == 0, done.stderr[-4000:]
    nodes = torch.load(tmp_path / "nodes.pt")
    assert nodes["num_processes"] == 2 and nodes["processes_on_this_machine"] == 1
    assert abs(single["loss"] - nodes["loss"]) <= 1e-5, (single["loss"], nodes["loss"])
    worst = max((single["grads"][name] - nodes["grads"][name]).abs().max().item() for name in single["grads"])
    assert worst <= 1e-5, worst


def test_pretrain_script_runs_as_two_synchronised_cpu_processes(tmp_path):
    """The real script under `accelerate launch --multi_gpu --num_processes 2`: one process group, one final save."""
    out = tmp_path / "run"
    done = accelerate_launch(2, [os.path.join(REPO, "examples", "pretrain.py"), "--output_dir", out,
                                 "--synthetic_records", "200", "--batch_size", "8", "--max_steps", "2",
                                 "--checkpointing_steps", "2", "--eval_steps", "0", "--local_text_hidden_size", "32"],
                             cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert "2 process(es) x batch 8" in log and log.count("Saved model, processor and model card") == 1
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["completed_steps"] == 2
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(os.listdir(out / "checkpoints" / "step_2"))


def test_gather_with_grad_is_the_identity_in_one_process():
    from tamer_hf.distributed import gather_with_grad

    embeds = torch.randn(3, 4, requires_grad=True)
    gathered, offset = gather_with_grad(embeds)
    assert gathered is embeds and offset == 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--per_process", type=int, required=True)
    options = parser.parse_args()
    arm_hang_timeout()
    worker(options.worker, options.per_process)

"""Two CPU processes give the same C-MELT losses and gradients as one process holding the doubled batch.

SigLIP is the term that needs the other processes: each process scores its ECGs against the texts of the global batch
(`gather_with_grad`), so every pair is counted once. ETM is a per-pair mean; MEM hides the same number of tokens in
every record, so its per-process mean is exact too; MLM is exact with `mlm_reduction="sum"` (sum / B; the per-process
mean over masked tokens would weight processes by their token counts), which this check uses so that the total loss
and every gradient must match. Identical reports sit on both processes (`report_ids`), so the duplicate-positive labels
are checked across the process boundary.

As in tests/test_distributed.py: eval mode (no dropout), fixed masks and negatives, float64.
This file is also the worker: `accelerate launch tests/test_cmelt_distributed.py --worker OUT --per_process N ...`.
"""

import argparse
import math
import os

import pytest
import torch

from tamer_hf.testing_utils import accelerate_launch, arm_hang_timeout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 8
IS_ALIGNED = [1, 0, 1, 1, 0, 1, 1, 1]


def worker(out: str, per_process: int, tokenizer_dir: str) -> None:
    import numpy as np
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from datasets_scripts.synthetic import iter_records
    from tamer_hf.distributed import end_training, gather_with_grad
    from tamer_hf.modeling.ecg_masking import mask_tokens_for_mlm
    from tamer_hf.testing_utils import tiny_cmelt_model_and_processor

    accelerator = Accelerator()
    # SigLIP with SigLIP's learnable scale and bias (their gradients cross processes too), averaged over B x B
    # pairs as C-MELT's code does (the harder denominator: this process's n rows x the N global texts)
    model, processor = tiny_cmelt_model_and_processor(
        tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir), mlm_reduction="sum", siglip_normalize=True,
        siglip_logit_scale_init=math.log(10), siglip_logit_bias_init=-10.0, siglip_learnable=True,
        siglip_reduction="mean")
    model = model.double().eval()  # float64: float32 rounding is ~1e-5 here
    records = list(iter_records(GLOBAL_BATCH, seed=3))
    reports = [report for _, report, _ in records]
    reports[5] = reports[0]  # the same report on both processes
    # the global batch, built identically in every launch; each process keeps its rows
    batch = dict(processor(ecg=np.stack([signal for signal, _, _ in records]), text=reports, sampling_rate=500))
    batch["input_values"] = batch["input_values"].double()
    generator = torch.Generator().manual_seed(0)
    special = torch.isin(batch["input_ids"], torch.tensor(processor.tokenizer.all_special_ids))
    batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens_for_mlm(
        batch["input_ids"], processor.tokenizer.mask_token_id, len(processor.tokenizer), 0.3,
        special | (batch["attention_mask"] == 0), generator=generator)
    batch["mem_noise"] = torch.rand(GLOBAL_BATCH, model.num_ecg_tokens, generator=generator)
    batch["is_aligned"] = torch.tensor(IS_ALIGNED)
    batch["report_ids"] = torch.tensor([reports.index(text) for text in reports])
    batch["text_report_ids"] = torch.where(batch["is_aligned"] == 1, batch["report_ids"], 100 + torch.arange(8))
    rows = slice(accelerator.process_index * per_process, (accelerator.process_index + 1) * per_process)
    batch = {key: value[rows] for key, value in batch.items()}

    model = accelerator.prepare(model)
    gather = gather_with_grad if accelerator.num_processes > 1 else None
    output = model(**batch, return_loss=True, gather=gather)
    accelerator.backward(output.loss)  # DDP averages the gradients over processes
    parts = {term: accelerator.reduce(output[f"loss_{term}"].detach(), reduction="mean").item()
             for term in ("mlm", "mem", "etm", "siglip")}
    loss = accelerator.reduce(output.loss.detach(), reduction="mean").item()
    if accelerator.is_main_process:
        grads = {name: p.grad.detach().clone() for name, p in accelerator.unwrap_model(model).named_parameters()
                 if p.grad is not None}
        torch.save({"loss": loss, "parts": parts, "grads": grads, "num_processes": accelerator.num_processes}, out)
    accelerator.wait_for_everyone()
    model = None  # DDP's reducer dies before the process group (tamer_hf.distributed.end_training)
    end_training(accelerator)


def launch(out, num_processes: int, per_process: int, tokenizer_dir):
    done = accelerate_launch(num_processes, [__file__, "--worker", out, "--per_process", per_process, "--tokenizer",
                                             tokenizer_dir], cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def one_and_two_processes(tmp_path_factory):
    from tamer_hf.text import train_t5_tokenizer

    folder = tmp_path_factory.mktemp("cmelt_ddp")
    # one vocabulary for every launch (Unigram training is not bit-reproducible from run to run)
    train_t5_tokenizer(vocab_size=300).save_pretrained(folder / "tokenizer")
    single = launch(folder / "one.pt", 1, GLOBAL_BATCH, folder / "tokenizer")
    double = launch(folder / "two.pt", 2, GLOBAL_BATCH // 2, folder / "tokenizer")
    return single, double


def test_two_processes_really_ran(one_and_two_processes):
    single, double = one_and_two_processes
    assert single["num_processes"] == 1 and double["num_processes"] == 2


def test_two_processes_give_the_losses_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert abs(single["loss"] - double["loss"]) <= 1e-5, (single["loss"], double["loss"])
    for term, value in single["parts"].items():
        assert abs(value - double["parts"][term]) <= 1e-5, (term, value, double["parts"][term])


def test_two_processes_give_the_gradients_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert set(single["grads"]) == set(double["grads"]) and len(single["grads"]) > 50
    worst = max((single["grads"][name] - double["grads"][name]).abs().max().item() for name in single["grads"])
    assert worst <= 1e-5, worst
    # not vacuous: the gradients are far from zero, also those that only SigLIP and ETM reach
    assert max(grad.abs().max().item() for grad in single["grads"].values()) > 1e-3
    for name in ("ecg_pooler.dense.weight", "text_pooler.dense.weight", "etm_head.weight", "siglip_logit_scale",
                 "siglip_logit_bias"):
        assert single["grads"][name].abs().max().item() > 1e-4, name


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--per_process", type=int, required=True)
    parser.add_argument("--tokenizer", required=True)
    options = parser.parse_args()
    arm_hang_timeout()
    worker(options.worker, options.per_process, options.tokenizer)

"""Two CPU processes give the same CG-DMER losses and gradients as one process holding the doubled batch.

Every term needs the other processes: SigLIP scores this process's ECGs against the reports of the global batch, the
orthogonality of shared and specific features is a statistic of the whole batch (centred over it, A^T B summed over
it), and the reconstruction / MLM means divide by the global number of masked patches / tokens (the reports'
masked-token counts differ between the processes). Identical reports sit on both processes (`report_ids`), so the
duplicate-positive labels are checked across the process boundary.

As in tests/test_cmelt_distributed.py: eval mode (no dropout, BatchNorm on its running statistics), fixed masks,
float64. This file is also the worker: `accelerate launch tests/test_cgdmer_distributed.py --worker OUT ...`.
"""

import argparse
import os

import pytest
import torch

from tamer_hf.testing_utils import accelerate_launch, arm_hang_timeout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 8
TERMS = ("siglip", "ecg_reconstruction", "mlm", "disentanglement")


def worker(out: str, per_process: int, tokenizer_dir: str) -> None:
    import numpy as np
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from datasets_scripts.synthetic import iter_records
    from tamer_hf.distributed import end_training, gather_with_grad
    from tamer_hf.modeling.ecg_masking import mask_tokens_for_mlm, spatiotemporal_mask
    from tamer_hf.testing_utils import tiny_cgdmer_model_and_processor

    accelerator = Accelerator()
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir))
    model = model.double().eval()  # float64: float32 rounding is ~1e-5 here
    cfg = model.config
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
    batch["ecg_mask"] = spatiotemporal_mask(GLOBAL_BATCH, cfg.num_leads, cfg.num_patches_per_lead, cfg.mask_ratio,
                                            cfg.mask_lead_ratio, cfg.mask_time_ratio, cfg.mask_time_span,
                                            generator=generator).mask.double()
    batch["report_ids"] = torch.tensor([reports.index(text) for text in reports])
    rows = slice(accelerator.process_index * per_process, (accelerator.process_index + 1) * per_process)
    batch = {key: value[rows] for key, value in batch.items()}
    masked_tokens = int((batch["mlm_labels"] != -100).sum())

    model = accelerator.prepare(model)
    gather = gather_with_grad if accelerator.num_processes > 1 else None
    output = model(**batch, return_loss=True, gather=gather)
    accelerator.backward(output.loss)  # DDP averages the gradients over processes
    parts = {term: accelerator.reduce(output[f"loss_{term}"].detach(), reduction="mean").item() for term in TERMS}
    loss = accelerator.reduce(output.loss.detach(), reduction="mean").item()
    counts = accelerator.gather(torch.tensor([masked_tokens])).tolist()
    if accelerator.is_main_process:
        grads = {name: p.grad.detach().clone() for name, p in accelerator.unwrap_model(model).named_parameters()
                 if p.grad is not None}
        torch.save({"loss": loss, "parts": parts, "grads": grads, "num_processes": accelerator.num_processes,
                    "masked_tokens": counts}, out)
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
    from tamer_hf.text import train_report_tokenizer

    folder = tmp_path_factory.mktemp("cgdmer_ddp")
    # one vocabulary for every launch (WordPiece training is not bit-reproducible from run to run)
    train_report_tokenizer(vocab_size=300).save_pretrained(str(folder / "tokenizer"))
    single = launch(folder / "one.pt", 1, GLOBAL_BATCH, folder / "tokenizer")
    double = launch(folder / "two.pt", 2, GLOBAL_BATCH // 2, folder / "tokenizer")
    return single, double


def test_two_processes_really_ran_with_unequal_masked_token_counts(one_and_two_processes):
    single, double = one_and_two_processes
    assert single["num_processes"] == 1 and double["num_processes"] == 2
    first, second = double["masked_tokens"]
    assert first != second and first + second == single["masked_tokens"][0]


def test_two_processes_give_the_losses_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert abs(single["loss"] - double["loss"]) <= 1e-5, (single["loss"], double["loss"])
    for term, value in single["parts"].items():
        assert abs(value - double["parts"][term]) <= 1e-5, (term, value, double["parts"][term])


def test_two_processes_give_the_gradients_of_the_doubled_batch(one_and_two_processes):
    single, double = one_and_two_processes
    assert set(single["grads"]) == set(double["grads"]) and len(single["grads"]) > 40
    worst = max((single["grads"][name] - double["grads"][name]).abs().max().item() for name in single["grads"])
    assert worst <= 1e-5, worst
    # not vacuous: the gradients of every part are far from zero
    for name in ("ecg_encoder.patch_embedding.weight", "shared_encoder.fc2.weight", "ecg_specific_encoder.fc2.weight",
                 "text_specific_encoder.fc2.weight", "ecg_decoder.predict.weight", "mlm_head.dense.weight",
                 "siglip_logit_scale", "siglip_logit_bias"):
        assert single["grads"][name].abs().max().item() > 1e-4, name


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--per_process", type=int, required=True)
    parser.add_argument("--tokenizer", required=True)
    options = parser.parse_args()
    arm_hang_timeout()
    worker(options.worker, options.per_process, options.tokenizer)

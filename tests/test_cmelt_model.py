"""CmeltModel: each objective (in every configured form) against an independent computation, the masking utilities,
zero-shot features, gradient checkpointing, parameter counts of the paper configuration, and a model that learns."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tamer_hf.modeling.configuration_cmelt import CmeltConfig
from tamer_hf.modeling.ecg_masking import (
    IGNORE_INDEX,
    keep_tokens,
    mask_tokens_for_mlm,
    num_kept_tokens,
    random_lead_mask,
    random_token_mask,
    unshuffle_tokens,
)
from tamer_hf.modeling.modeling_cmelt import CmeltModel, mem_loss
from tamer_hf.testing_utils import tiny_cmelt_model_and_processor
from tamer_hf.text import train_t5_tokenizer

REPORTS = [
    "sinus rhythm. normal ecg.",
    "atrial fibrillation with rapid ventricular response. st depression.",
    "left bundle branch block.",
    "sinus bradycardia. first degree av block. t wave inversion in lateral leads.",
]
IS_ALIGNED = torch.tensor([1, 0, 1, 1])  # row 1 carries a swapped-in (negative) report


@pytest.fixture(scope="module")
def tokenizer():
    return train_t5_tokenizer(REPORTS, vocab_size=300)


def make_batch(processor, model, seed=0):
    generator = np.random.default_rng(seed)
    ecgs = generator.normal(size=(len(REPORTS), 12, 5000)).cumsum(axis=-1) * 0.01
    batch = dict(processor(ecg=ecgs, text=REPORTS, sampling_rate=500))
    assert (batch["attention_mask"] == 0).any(), "the reports must have padding for these tests"
    batch["input_values"][0, 3] = 0.0  # a lead zeroed by lead masking: its normalised MEM target must be 0, not NaN
    torch.manual_seed(seed)
    special = torch.isin(batch["input_ids"], torch.tensor(processor.tokenizer.all_special_ids))
    special |= batch["attention_mask"] == 0
    batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens_for_mlm(
        batch["input_ids"], processor.tokenizer.mask_token_id, len(processor.tokenizer), 0.5, special
    )
    assert ((batch["mlm_labels"] != IGNORE_INDEX).sum(dim=1) > 0).all(), "every report needs masked tokens"
    batch["is_aligned"] = IS_ALIGNED
    batch["mem_noise"] = torch.rand(len(REPORTS), model.num_ecg_tokens)
    return batch


def run(model, batch, **extra):
    with torch.no_grad():
        return model(**batch, **extra, return_loss=True)


# ----------------------------------------------------------------------------------------------------------------------
# SigLIP


def naive_siglip(ecg, text, scale, bias, labels, reduction, normalize):
    """-1/B sum_i sum_j log sigmoid(y_ij (s x_i.t_j + b)) (paper Eq. 4; or / B^2 for "mean"), as explicit loops."""
    ecg, text = ecg.double().tolist(), text.double().tolist()
    if normalize:
        ecg = [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in ecg]
        text = [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in text]
    n, total = len(ecg), 0.0
    for i in range(n):
        for j in range(n):
            logit = scale * sum(a * b for a, b in zip(ecg[i], text[j])) + bias
            total += math.log1p(math.exp(-labels[i][j] * logit))  # -log sigmoid(y z)
    return total / (n * n) if reduction == "mean" else total / n


SIGLIP_FORMS = {
    "code": dict(),  # scale 1, no bias, unnormalised, mean over B x B
    "paper_eq4": dict(siglip_reduction="sum"),
    "siglip_paper": dict(siglip_normalize=True, siglip_logit_scale_init=math.log(10), siglip_logit_bias_init=-10.0,
                         siglip_learnable=True, siglip_reduction="sum"),
}


@pytest.mark.parametrize("form", sorted(SIGLIP_FORMS))
def test_siglip_equals_the_explicit_double_sum(tokenizer, form):
    overrides = SIGLIP_FORMS[form]
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, zero_shot_score="dot", **overrides)
    batch = make_batch(processor, model)
    output = run(model, batch)  # zero_shot_score="dot": ecg_embeds / text_embeds are the raw pooled features
    cfg = model.config
    labels = [[(1 if IS_ALIGNED[i] else -1) if i == j else -1 for j in range(4)] for i in range(4)]
    expected = naive_siglip(output.ecg_embeds, output.text_embeds, math.exp(cfg.siglip_logit_scale_init),
                            cfg.siglip_logit_bias_init or 0.0, labels, cfg.siglip_reduction, cfg.siglip_normalize)
    assert float(output.loss_siglip) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert model.siglip_logit_scale.requires_grad == cfg.siglip_learnable


def test_siglip_counts_identical_reports_as_positives_when_given_report_ids(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, zero_shot_score="dot",
                                                      **SIGLIP_FORMS["siglip_paper"])
    batch = make_batch(processor, model)
    report_ids = torch.tensor([0, 1, 0, 2])  # ECGs 0 and 2 share a report
    text_report_ids = torch.tensor([0, 7, 0, 2])  # row 1 carries report 7 (a swap)
    output = run(model, batch, report_ids=report_ids, text_report_ids=text_report_ids)
    labels = [[1 if report_ids[i] == text_report_ids[j] else -1 for j in range(4)] for i in range(4)]
    expected = naive_siglip(output.ecg_embeds, output.text_embeds, 10.0, -10.0, labels, "sum", True)
    assert float(output.loss_siglip) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    plain = naive_siglip(output.ecg_embeds, output.text_embeds, 10.0, -10.0,
                         [[(1 if IS_ALIGNED[i] else -1) if i == j else -1 for j in range(4)] for i in range(4)],
                         "sum", True)
    assert abs(expected - plain) > 1.0  # the (0, 2) and (2, 0) pairs really changed sign


def test_siglip_can_read_an_unmasked_second_pass(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, zero_shot_score="dot",
                                                      siglip_unmasked_inputs=True)
    batch = make_batch(processor, model)
    output = run(model, batch)
    with torch.no_grad():  # what zero-shot classification sees: every ECG token, the unmasked report
        ecg = model.get_ecg_features(input_values=batch["input_values"])
        text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(output.ecg_embeds, ecg)
    torch.testing.assert_close(output.text_embeds, text)
    labels = [[(1 if IS_ALIGNED[i] else -1) if i == j else -1 for j in range(4)] for i in range(4)]
    assert float(output.loss_siglip) == pytest.approx(naive_siglip(ecg, text, 1.0, 0.0, labels, "mean", False),
                                                      rel=1e-5, abs=1e-6)
    assert output.mem_mask is not None and output.loss_mem is not None  # MEM and MLM still read the masked pass


# ----------------------------------------------------------------------------------------------------------------------
# ETM, MLM, MEM


@pytest.mark.parametrize("kind", ["ce", "bce"])
def test_etm_equals_its_cross_entropy(tokenizer, kind):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, etm_loss=kind)
    output = run(model, make_batch(processor, model))
    logits = output.etm_logits.double()
    assert logits.shape == (4, 2 if kind == "ce" else 1)
    total = 0.0
    for i in range(4):
        y = int(IS_ALIGNED[i])
        if kind == "ce":
            total += -(float(logits[i, y]) - math.log(sum(math.exp(float(v)) for v in logits[i])))
        else:
            p = 1 / (1 + math.exp(-float(logits[i, 0])))
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
    assert float(output.loss_etm) == pytest.approx(total / 4, rel=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("aligned_only", [True, False])
def test_mlm_is_the_cross_entropy_of_the_masked_tokens_only(tokenizer, reduction, aligned_only):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, mlm_reduction=reduction,
                                                      mlm_aligned_only=aligned_only)
    batch = make_batch(processor, model)
    output = run(model, batch)
    log_probs = output.mlm_logits.double().log_softmax(dim=-1)
    total, count = 0.0, 0
    for i in range(4):
        if aligned_only and not IS_ALIGNED[i]:
            continue  # a swapped-in report: its words are not this ECG's
        for position, label in enumerate(batch["mlm_labels"][i].tolist()):
            if label != IGNORE_INDEX:
                total -= float(log_probs[i, position, label])
                count += 1
    expected = total / count if reduction == "mean" else total / 4
    assert float(output.loss_mlm) == pytest.approx(expected, rel=1e-5)


def naive_mem_target(input_values, num_tokens, patch, eps):
    """(B, L, 12 * patch): each lead standardised over the whole record (unbiased variance), token t = its samples."""
    batch, leads = input_values.shape[:2]
    target = torch.zeros(batch, num_tokens, leads * patch, dtype=torch.float64)
    for b in range(batch):
        for lead in range(leads):
            signal = input_values[b, lead, : num_tokens * patch].double()
            mean = signal.sum() / len(signal)
            var = ((signal - mean) ** 2).sum() / (len(signal) - 1)
            normed = (signal - mean) / math.sqrt(float(var) + eps)
            for t in range(num_tokens):
                target[b, t, lead * patch:(lead + 1) * patch] = normed[t * patch:(t + 1) * patch]
    return target


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mem_is_the_squared_error_of_the_masked_tokens_only(tokenizer, reduction):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, mem_reduction=reduction)
    batch = make_batch(processor, model)
    output = run(model, batch)
    num_tokens, patch = model.num_ecg_tokens, model.config.patch_size
    assert (num_tokens, patch) == (312, 16)
    mask = output.mem_mask
    kept = num_kept_tokens(num_tokens, model.config.mem_mask_ratio)
    assert mask.shape == (4, 312) and (mask.sum(dim=1) == num_tokens - kept).all() and kept == 78
    target = naive_mem_target(batch["input_values"], num_tokens, patch, model.config.mem_norm_eps)
    assert target[0, :, 3 * patch:4 * patch].abs().max() == 0  # the zeroed lead
    squared = (output.mem_predictions.double() - target) ** 2  # (B, L, 192)
    per_record = [sum(float(squared[b, t].sum()) for t in range(num_tokens) if mask[b, t]) for b in range(4)]
    if reduction == "mean":
        expected = sum(per_record) / (squared.shape[-1] * float(mask.sum()))
    else:
        expected = sum(per_record) / 4
    assert float(output.loss_mem) == pytest.approx(expected, rel=1e-5)

    # the reconstruction of the visible tokens does not count; that of a hidden token does
    targets = target.float()
    moved_visible = output.mem_predictions + 5.0 * (1 - mask)[:, :, None]
    assert float(mem_loss(moved_visible, targets, mask, reduction)) == pytest.approx(float(output.loss_mem), rel=1e-6)
    moved_hidden = output.mem_predictions + 5.0 * mask[:, :, None]
    assert float(mem_loss(moved_hidden, targets, mask, reduction)) > float(output.loss_mem) + 1


def test_total_loss_is_the_weighted_sum_and_terms_switch_off(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, mlm_weight=0.5, mem_weight=2.0,
                                                      etm_weight=0.25, siglip_weight=3.0)
    batch = make_batch(processor, model)
    output = run(model, batch)
    expected = 0.5 * output.loss_mlm + 2.0 * output.loss_mem + 0.25 * output.loss_etm + 3.0 * output.loss_siglip
    assert float(output.loss) == pytest.approx(float(expected), rel=1e-6)

    model, _ = tiny_cmelt_model_and_processor(tokenizer=tokenizer, use_mlm=False, use_etm=False)
    assert model.mlm_head is None and model.etm_head is None and model.config.enabled_losses == ["mem", "siglip"]
    output = run(model, batch)
    assert output.loss_mlm is None and output.loss_etm is None
    assert float(output.loss) == pytest.approx(float(output.loss_mem + output.loss_siglip), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Zero-shot features


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_zero_shot_features_are_unmasked_and_normalised(tokenizer, pooling):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, unimodal_pooling=pooling)
    batch = make_batch(processor, model)
    with torch.no_grad():
        ecg = model.get_ecg_features(input_values=batch["input_values"])
        text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        plain = model(input_values=batch["input_values"], input_ids=batch["input_ids"],
                      attention_mask=batch["attention_mask"])  # eval, no loss: no masking
        again = model.get_ecg_features(input_values=batch["input_values"])
    assert ecg.shape == text.shape == (4, model.config.hidden_size)
    torch.testing.assert_close(ecg.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(plain.ecg_embeds, ecg)
    torch.testing.assert_close(plain.text_embeds, text)
    assert torch.equal(ecg, again) and plain.mem_mask is None and plain.loss is None
    with torch.no_grad():  # the pooled token(s): [CLS] / first token, or the mean of the patches / report tokens
        ecg_tokens = model.encode_ecg(batch["input_values"])
        text_tokens = model.encode_text(batch["input_ids"], batch["attention_mask"])
    if pooling == "first":
        ecg_pooled, text_pooled = ecg_tokens[:, 0], text_tokens[:, 0]
    else:
        lengths = batch["attention_mask"].sum(dim=1)
        ecg_pooled = ecg_tokens[:, 1:].mean(dim=1)
        text_pooled = torch.stack([text_tokens[i, :length].mean(dim=0) for i, length in enumerate(lengths)])
    torch.testing.assert_close(ecg, F.normalize(torch.tanh(model.ecg_pooler.dense(ecg_pooled)), dim=-1))
    torch.testing.assert_close(text, F.normalize(torch.tanh(model.text_pooler.dense(text_pooled)), dim=-1))
    # the padding of a batch does not change a prompt's embedding (T5 gets the attention mask)
    with torch.no_grad():
        alone = model.get_text_features(**processor.tokenizer(REPORTS[2:3], return_tensors="pt"))
    torch.testing.assert_close(alone[0], text[2], rtol=1e-5, atol=1e-6)

    model.config.zero_shot_score = "dot"  # C-MELT's notebook: raw dot products of the pooled features
    with torch.no_grad():
        raw = model.get_ecg_features(input_values=batch["input_values"])
    torch.testing.assert_close(F.normalize(raw, dim=-1), ecg)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(4))


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer)
    batch = make_batch(processor, model)
    for module in model.modules():  # no dropout, so both runs are the same function
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = 0.0
    model.train()

    def gradients():
        model.zero_grad()
        model(**batch, return_loss=True).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys() and len(plain) > 50
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_frozen_text_encoder_gets_no_gradient_and_stays_in_eval_mode(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer, freeze_text_encoder=True)
    model.train()
    assert not model.text_model.training and model.ecg_encoder.training
    model(**make_batch(processor, model), return_loss=True).loss.backward()
    assert all(p.grad is None for p in model.text_model.parameters())
    assert model.text_projection.weight.grad is not None


# ----------------------------------------------------------------------------------------------------------------------
# Configuration


def test_paper_configuration_has_the_reference_sizes():
    with torch.device("meta"):  # counts parameters without allocating 1.3 GB
        model = CmeltModel(CmeltConfig())

    def count(*modules):
        return sum(p.numel() for module in modules for p in module.parameters())

    assert model.num_ecg_tokens == 312
    assert count(model.ecg_encoder) == pytest.approx(62.0e6, rel=0.01)  # reference: ~62M
    fusion_module = (model.fusion, model.ecg_projection, model.text_projection, model.ecg_pooler, model.text_pooler,
                     model.fused_text_pooler, model.fused_ecg_pooler)
    assert count(*fusion_module) == pytest.approx(117e6, rel=0.01)  # reference: ~117M (projections + poolers incl.)
    assert model.text_model.config.d_model == 768 and model.text_model.config.num_layers == 12  # flan-t5-base
    assert model.mlm_head.decoder.out_features == 32128


@pytest.mark.parametrize("bad", [
    dict(ecg_conv_kernel=[3, 2, 2, 2]), dict(mem_layer=7), dict(mem_mask_ratio=1.0), dict(etm_loss="hinge"),
    dict(siglip_reduction="max"), dict(zero_shot_score="l1"), dict(lead_mask_prob=1.5), dict(ecg_num_heads=5),
    dict(unimodal_pooling="max"),
])
def test_bad_configuration_values_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        CmeltConfig(**bad)


# ----------------------------------------------------------------------------------------------------------------------
# Masking utilities


def test_random_lead_mask_zeroes_whole_leads_with_the_given_probability():
    signal = torch.randn(2000, 12, 8) + 5.0
    torch.manual_seed(0)
    masked, dropped = random_lead_mask(signal, 0.5)
    assert dropped.shape == (2000, 12) and abs(dropped.float().mean().item() - 0.5) < 0.01
    assert (masked[dropped] == 0).all() and torch.equal(masked[~dropped], signal[~dropped])
    assert not random_lead_mask(signal, 0.0)[1].any() and random_lead_mask(signal, 1.0)[1].all()
    torch.manual_seed(0)
    assert torch.equal(random_lead_mask(signal, 0.5)[1], dropped)  # the global RNG decides


@pytest.mark.parametrize("num_tokens,ratio", [(312, 0.75), (100, 0.5), (7, 0.9), (10, 0.0)])
def test_random_token_mask_keeps_exactly_the_mae_count_and_restores_the_order(num_tokens, ratio):
    torch.manual_seed(1)
    token_mask = random_token_mask(5, num_tokens, ratio)
    kept = num_kept_tokens(num_tokens, ratio)
    assert kept == int(num_tokens * (1 - ratio)) and token_mask.keep_indices.shape == (5, kept)
    assert (token_mask.mask.sum(dim=1) == num_tokens - kept).all()
    for row in range(5):
        keep = token_mask.keep_indices[row]
        assert len(set(keep.tolist())) == kept and (token_mask.mask[row, keep] == 0).all()
    tokens = torch.randn(5, num_tokens, 3)
    fill = torch.full((1, 1, 3), 7.0)
    restored = unshuffle_tokens(keep_tokens(tokens, token_mask.keep_indices), fill, token_mask.restore_indices)
    hidden = token_mask.mask.bool()
    assert torch.equal(restored[~hidden], tokens[~hidden]) and (restored[hidden] == 7.0).all()
    torch.manual_seed(1)
    assert torch.equal(random_token_mask(5, num_tokens, ratio).keep_indices, token_mask.keep_indices)
    noise = torch.rand(5, num_tokens)
    assert torch.equal(random_token_mask(5, num_tokens, ratio, noise=noise).mask,
                       random_token_mask(5, num_tokens, ratio, noise=noise.clone()).mask)


def test_mlm_masking_is_80_10_10_of_the_non_special_tokens():
    ids = torch.randint(10, 500, (400, 100))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -10:] = True  # e.g. EOS and padding
    torch.manual_seed(3)
    corrupted, labels = mask_tokens_for_mlm(ids, mask_token_id=3, vocab_size=500, probability=0.25,
                                            special_tokens_mask=special)
    selected = labels != IGNORE_INDEX
    assert not selected[special].any()
    assert abs(selected[~special].float().mean().item() - 0.25) < 0.01
    assert torch.equal(labels[selected], ids[selected]) and torch.equal(corrupted[~selected], ids[~selected])
    masked = corrupted[selected] == 3
    unchanged = corrupted[selected] == ids[selected]
    randomised = ~masked & ~unchanged
    assert abs(masked.float().mean().item() - 0.8) < 0.015
    assert abs(randomised.float().mean().item() - 0.1) < 0.015  # random ids equal to the original count as unchanged
    assert abs(unchanged.float().mean().item() - 0.1) < 0.015
    torch.manual_seed(3)
    again = mask_tokens_for_mlm(ids, 3, 500, 0.25, special)
    assert torch.equal(again[0], corrupted) and torch.equal(again[1], labels)


# ----------------------------------------------------------------------------------------------------------------------
# Learning


def test_the_model_learns_a_small_batch(tokenizer):
    model, processor = tiny_cmelt_model_and_processor(tokenizer=tokenizer)
    batch = make_batch(processor, model)
    initial = run(model, batch)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(20):
        optimizer.zero_grad()
        model(**batch, return_loss=True).loss.backward()
        optimizer.step()
    model.eval()
    final = run(model, batch)
    assert float(final.loss) < 0.7 * float(initial.loss), (float(initial.loss), float(final.loss))
    for term in ("mlm", "mem", "etm", "siglip"):
        assert float(final[f"loss_{term}"]) < float(initial[f"loss_{term}"]), term


# ----------------------------------------------------------------------------------------------------------------------
# The family plug-in: build + collator, as the pre-training loop uses them


class _OneProcess:
    """What `make_collator` uses of an accelerate.Accelerator, for one process."""

    device = torch.device("cpu")
    is_main_process = True

    def main_process_first(self):
        import contextlib

        return contextlib.nullcontext()

    def print(self, *args):
        pass


def test_family_builds_a_model_whose_collator_feeds_every_loss(tmp_path):
    from datasets_scripts.synthetic import iter_records

    from tamer_hf.families import get_family
    from tamer_hf.training import parse_args

    family = get_family("cmelt")
    args = parse_args(["--model_type", "cmelt", "--model_preset", "cmelt-tiny", "--output_dir", str(tmp_path),
                       "--cmelt_local_vocab_size", "300"])
    records = list(iter_records(16, seed=5))
    reports = sorted({report for _, report, _ in records})
    rows = [{"ecg": signal.astype(np.float32), "report_id": reports.index(report)} for signal, report, _ in records]
    tokenizer = family.train_tokenizer(reports, args)
    torch.manual_seed(0)
    model, processor = family.build(args, reports, tokenizer)
    assert model.config.enabled_losses == ["mlm", "mem", "etm", "siglip"]
    assert processor.feature_extractor.normalization == "none" and processor.tokenizer.mask_token == "<extra_id_0>"
    collator = family.make_collator(args, model, processor, reports, _OneProcess())
    assert list((tmp_path / "n3s_cache").glob("n3s_embeddings_*.npy"))  # N3S embeddings cached under output_dir

    torch.manual_seed(1)
    batch = collator(rows)
    torch.manual_seed(1)
    again = collator(rows)
    assert batch.keys() == again.keys() and all(torch.equal(batch[key], again[key]) for key in batch)  # global RNG
    assert batch["input_values"].shape == (16, 12, 5000) and batch["mem_noise"].shape == (16, model.num_ecg_tokens)
    assert (batch["is_aligned"] == 0).sum() == 8  # int(0.5 * B + U[0, 1)) swaps
    dropped = batch["input_values"].abs().amax(dim=-1) == 0  # (B, 12): leads zeroed by random lead masking
    assert 0.2 < dropped.float().mean() < 0.8
    for row in range(16):  # swapped rows carry another report, before the MLM masking
        own = processor.tokenizer(reports[rows[row]["report_id"]])["input_ids"]
        carried = batch["input_ids"][row][batch["attention_mask"][row] == 1].tolist()
        assert (carried == own) == bool(batch["is_aligned"][row])
    labelled = batch["mlm_labels"] != -100
    assert labelled.any() and torch.equal(batch["mlm_labels"][labelled], batch["input_ids"][labelled])
    assert not labelled[batch["attention_mask"] == 0].any()  # never padding

    output = model.train()(**batch, return_loss=True)
    assert all(torch.isfinite(output[f"loss_{term}"]) for term in ("mlm", "mem", "etm", "siglip"))
    output.loss.backward()

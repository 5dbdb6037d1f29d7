"""CgdmerModel: the spatio-temporal mask generator, each objective against an independent computation (float64),
the Table 3 switches, zero-shot features, the collator, the paper-size parameter counts, and a model that learns."""

import math

import numpy as np
import pytest
import torch

from tamer_hf.families.cgdmer import CgdmerCollator
from tamer_hf.modeling.configuration_cgdmer import CgdmerConfig
from tamer_hf.modeling.ecg_masking import (IGNORE_INDEX, keep_tokens, mask_tokens_for_mlm, random_time_spans,
                                           spatiotemporal_mask, token_mask_from_mask, unshuffle_tokens)
from tamer_hf.modeling.modeling_cgdmer import CgdmerModel, reconstruction_loss
from tamer_hf.testing_utils import tiny_cgdmer_model_and_processor
from tamer_hf.text import train_report_tokenizer

REPORTS = [
    "sinus rhythm. normal ecg.",
    "atrial fibrillation with rapid ventricular response. st depression.",
    "left bundle branch block.",
    "sinus rhythm. normal ecg.",  # the same report as row 0
]
REPORT_IDS = torch.tensor([0, 1, 2, 0])


@pytest.fixture(scope="module")
def tokenizer():
    return train_report_tokenizer(REPORTS, vocab_size=300)


def make_batch(model, processor, seed=0):
    """ECGs and reports through the processor, MLM corruption and a spatio-temporal mask drawn under `seed`."""
    ecgs = np.random.default_rng(seed).normal(size=(len(REPORTS), 12, 5000)).cumsum(axis=-1) * 0.01
    batch = dict(processor(ecg=ecgs, text=REPORTS, sampling_rate=500))
    assert (batch["attention_mask"] == 0).any(), "the reports must have padding for these tests"
    cfg = model.config
    torch.manual_seed(seed)
    special = torch.isin(batch["input_ids"], torch.tensor(processor.tokenizer.all_special_ids))
    special |= batch["attention_mask"] == 0
    batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens_for_mlm(
        batch["input_ids"], processor.tokenizer.mask_token_id, len(processor.tokenizer), 0.5, special)
    assert ((batch["mlm_labels"] != IGNORE_INDEX).sum(dim=1) > 0).all(), "every report needs masked tokens"
    batch["ecg_mask"] = spatiotemporal_mask(len(REPORTS), cfg.num_leads, cfg.num_patches_per_lead, cfg.mask_ratio,
                                            cfg.mask_lead_ratio, cfg.mask_time_ratio, cfg.mask_time_span).mask
    batch["report_ids"] = REPORT_IDS
    return batch


def float64(model, batch):
    model = model.double()
    return model, {key: value.double() if value.is_floating_point() else value for key, value in batch.items()}


def run(model, batch, **extra):
    with torch.no_grad():
        return model(**batch, **extra, return_loss=True)


# ----------------------------------------------------------------------------------------------------------------------
# Spatio-temporal masking


@pytest.mark.parametrize("leads, times, ratio, lead_ratio, time_ratio, span", [
    (12, 40, 0.75, 0.25, 0.25, 4),  # the paper-size default: 3 leads, 10 columns in spans of 4 (4 + 4 + 2)
    (12, 20, 0.75, 0.25, 0.25, 2),  # quick
    (12, 10, 0.5, 0.0, 0.3, 3),  # time spans only
    (12, 10, 0.9, 0.5, 0.0, 1),  # whole leads only
    (6, 7, 0.6, 0.0, 0.0, 1),  # random patches only (MAE)
])
def test_spatiotemporal_mask_hides_exactly_the_configured_patches(leads, times, ratio, lead_ratio, time_ratio, span):
    torch.manual_seed(0)
    mask = spatiotemporal_mask(500, leads, times, ratio, lead_ratio, time_ratio, span)
    total = leads * times - int(leads * times * (1 - ratio))
    assert mask.mask.shape == (500, leads * times) and (mask.mask.sum(dim=1) == total).all()  # the ratio, exactly
    assert mask.keep_indices.shape == (500, leads * times - total)
    grid = mask.mask.view(500, leads, times).bool()
    # whole leads: round(lead_ratio * L) per sample, every patch of them masked
    assert (mask.masked_leads.sum(dim=1) == round(lead_ratio * leads)).all()
    assert grid[mask.masked_leads].all()
    # time columns: round(time_ratio * T) per sample, masked in every lead, in runs made of whole spans
    columns = round(time_ratio * times)
    assert (mask.masked_times.sum(dim=1) == columns).all()
    assert grid.permute(0, 2, 1)[mask.masked_times].all()
    if columns and columns % span == 0:
        for row in mask.masked_times[:50].tolist():
            runs = [len(run) for run in "".join("x" if m else " " for m in row).split()]
            assert all(length % span == 0 for length in runs), runs
    # nothing systematic: every lead is masked whole and every column is masked in all leads in some sample
    assert mask.masked_leads.any(dim=0).all() == bool(lead_ratio)
    assert mask.masked_times.any(dim=0).all() == bool(columns)
    if lead_ratio:
        share = mask.masked_leads.float().mean(dim=0)  # each lead chosen about lead_ratio of the time
        assert (share - round(lead_ratio * leads) / leads).abs().max() < 0.08


def test_spatiotemporal_mask_is_deterministic_under_a_seed():
    torch.manual_seed(3)
    first = spatiotemporal_mask(16, 12, 20, 0.75, 0.25, 0.25, 2)
    torch.manual_seed(3)
    again = spatiotemporal_mask(16, 12, 20, 0.75, 0.25, 0.25, 2)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    other = spatiotemporal_mask(16, 12, 20, 0.75, 0.25, 0.25, 2)  # the RNG moved on
    assert not torch.equal(first.mask, other.mask)
    generated = spatiotemporal_mask(16, 12, 20, 0.75, 0.25, 0.25, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(generated.mask, spatiotemporal_mask(16, 12, 20, 0.75, 0.25, 0.25, 2,
                                                           generator=torch.Generator().manual_seed(5)).mask)


def test_time_spans_do_not_overlap_and_reach_both_ends():
    spans = random_time_spans(4000, 20, 6, 3, generator=torch.Generator().manual_seed(1))  # two spans of 3
    assert (spans.sum(dim=1) == 6).all()
    assert spans[:, 0].any() and spans[:, -1].any()
    apart = [row for row in spans.tolist() if "".join("x" if m else " " for m in row).split() != ["x" * 6]]
    assert apart  # most draws put the two spans apart
    assert not random_time_spans(3, 20, 0, 3).any()


def test_a_mask_over_the_ratio_is_refused():
    with pytest.raises(ValueError, match="more than mask_ratio"):
        spatiotemporal_mask(2, 12, 20, 0.5, lead_ratio=0.5, time_ratio=0.5)
    with pytest.raises(ValueError, match="mask_ratio / mask_lead_ratio"):
        CgdmerConfig(mask_ratio=0.3)


def test_token_mask_from_mask_keeps_patches_in_order_and_restores_them():
    torch.manual_seed(2)
    mask = spatiotemporal_mask(3, 12, 10, 0.75, 0.25, 0.2, 1).mask
    token_mask = token_mask_from_mask(mask)
    assert torch.equal(token_mask.mask, mask)
    assert (token_mask.keep_indices.diff(dim=1) > 0).all()  # ascending
    tokens = torch.randn(3, 120, 5)
    restored = unshuffle_tokens(keep_tokens(tokens, token_mask.keep_indices), torch.full((1, 1, 5), 9.0),
                                token_mask.restore_indices)
    hidden = mask.bool()
    assert torch.equal(restored[~hidden], tokens[~hidden]) and (restored[hidden] == 9.0).all()
    with pytest.raises(ValueError, match="same number"):
        token_mask_from_mask(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))


# ----------------------------------------------------------------------------------------------------------------------
# Objectives against explicit references (float64)


def naive_patch_targets(input_values, patch, norm, eps):
    """(B, 12 T, patch) in lead-major order, each patch / lead standardised with the population variance."""
    batch, leads, samples = input_values.shape
    times = samples // patch
    targets = torch.zeros(batch, leads * times, patch, dtype=torch.float64)
    for b in range(batch):
        for lead in range(leads):
            signal = input_values[b, lead].double()
            if norm == "lead":
                signal = (signal - signal.mean()) / math.sqrt(float(((signal - signal.mean()) ** 2).mean()) + eps)
            for t in range(times):
                piece = signal[t * patch:(t + 1) * patch]
                if norm == "patch":
                    piece = (piece - piece.mean()) / math.sqrt(float(((piece - piece.mean()) ** 2).mean()) + eps)
                targets[b, lead * times + t] = piece
    return targets


@pytest.mark.parametrize("norm", ["patch", "lead", "none"])
def test_ecg_reconstruction_is_the_squared_error_of_the_masked_patches_only(tokenizer, norm):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, reconstruction_norm=norm)
    model, batch = float64(model, make_batch(model, processor))
    output = run(model, batch)
    cfg = model.config
    assert torch.equal(output.reconstruction_mask, batch["ecg_mask"])
    assert output.reconstruction.shape == (4, cfg.num_patches, cfg.patch_size) == (4, 120, 500)
    target = naive_patch_targets(batch["input_values"], cfg.patch_size, norm, cfg.reconstruction_norm_eps)
    total, count = 0.0, 0
    for b in range(4):
        for n in range(cfg.num_patches):
            if batch["ecg_mask"][b, n]:
                total += float(((output.reconstruction[b, n] - target[b, n]) ** 2).mean())
                count += 1
    assert count == 4 * 90  # 0.75 of 120 patches in each record
    assert float(output.loss_ecg_reconstruction) == pytest.approx(total / count, rel=1e-9)
    # the visible patches' reconstruction does not count; a hidden patch's does
    mask = batch["ecg_mask"].double()
    moved_visible = output.reconstruction + 5.0 * (1 - mask)[:, :, None]
    assert float(reconstruction_loss(moved_visible, target, mask)) == pytest.approx(total / count, rel=1e-9)
    moved_hidden = output.reconstruction + 5.0 * mask[:, :, None]
    assert float(reconstruction_loss(moved_hidden, target, mask)) > total / count + 1


def naive_siglip(ecg, text, scale, bias, labels, reduction):
    n, total = len(ecg), 0.0
    for i in range(n):
        for j in range(n):
            logit = scale * sum(a * b for a, b in zip(ecg[i], text[j])) + bias
            total += math.log1p(math.exp(-labels[i][j] * logit))  # -log sigmoid(y z)
    return total / n if reduction == "sum" else total / (n * n)


def unit(rows):
    return [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in rows]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("with_report_ids", [True, False])
def test_siglip_aligns_the_normalised_shared_features_only(tokenizer, reduction, with_report_ids):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, siglip_reduction=reduction)
    model, batch = float64(model, make_batch(model, processor))
    with torch.no_grad():  # make scale and bias differ from their initial values
        model.siglip_logit_scale.fill_(1.3)
        model.siglip_logit_bias.fill_(-2.5)
    if not with_report_ids:
        batch.pop("report_ids")
    output = run(model, batch)
    with torch.no_grad():  # the shared features of the unmasked inputs, pooled
        ecg = unit(model.encode_ecg(batch["input_values"]).shared.tolist())
        text = unit(model.encode_text(batch["input_ids"], batch["attention_mask"]).shared.tolist())
    ids = REPORT_IDS.tolist()
    labels = [[1 if (ids[i] == ids[j] if with_report_ids else i == j) else -1 for j in range(4)] for i in range(4)]
    expected = naive_siglip(ecg, text, math.exp(1.3), -2.5, labels, reduction)
    assert float(output.loss_siglip) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(output.ecg_embeds, torch.tensor(ecg, dtype=torch.float64))


def naive_orthogonality(a, b, eps):
    """MISA: centre each column over the batch, rows to unit length, mean over (i, j) of (sum_n a_ni b_nj)^2."""
    def prepare(rows):
        means = [sum(column) / len(rows) for column in zip(*rows)]
        centred = [[v - m for v, m in zip(row, means)] for row in rows]
        return [[v / (math.sqrt(sum(w * w for w in row)) + eps) for v in row] for row in centred]

    a, b = prepare(a), prepare(b)
    total = 0.0
    for i in range(len(a[0])):
        for j in range(len(b[0])):
            total += sum(a[n][i] * b[n][j] for n in range(len(a))) ** 2
    return total / (len(a[0]) * len(b[0]))


@pytest.mark.parametrize("between_specific", [True, False])
def test_disentanglement_is_the_soft_orthogonality_of_shared_and_specific_features(tokenizer, between_specific):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer,
                                                       orthogonality_between_specific=between_specific)
    model, batch = float64(model, make_batch(model, processor))
    output = run(model, batch)
    with torch.no_grad():
        ecg = model.encode_ecg(batch["input_values"])
        text = model.encode_text(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(output.ecg_specific_embeds, ecg.specific)
    eps = model.config.orthogonality_eps
    expected = (naive_orthogonality(ecg.shared.tolist(), ecg.specific.tolist(), eps)
                + naive_orthogonality(text.shared.tolist(), text.specific.tolist(), eps))
    if between_specific:
        expected += naive_orthogonality(ecg.specific.tolist(), text.specific.tolist(), eps)
    assert float(output.loss_disentanglement) == pytest.approx(expected, rel=1e-9)
    assert expected > 1e-3  # not trivially 0


def test_mlm_is_the_cross_entropy_of_the_masked_report_tokens_only(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    model, batch = float64(model, make_batch(model, processor))
    output = run(model, batch)
    assert output.mlm_logits.shape[-1] == len(processor.tokenizer)
    log_probs = output.mlm_logits.log_softmax(dim=-1)
    total, count = 0.0, 0
    for i in range(4):
        for position, label in enumerate(batch["mlm_labels"][i].tolist()):
            if label != IGNORE_INDEX:
                total -= float(log_probs[i, position, label])
                count += 1
    assert float(output.loss_mlm) == pytest.approx(total / count, rel=1e-9)
    # the decoder is the word-embedding matrix (tied, as BERT), not a copy
    assert "mlm_head.decoder.weight" not in dict(model.named_parameters())


# ----------------------------------------------------------------------------------------------------------------------
# The paper's Table 3 switches


def test_total_loss_is_the_weighted_sum_of_the_terms(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, siglip_weight=0.5,
                                                       ecg_reconstruction_weight=2.0, mlm_weight=0.25,
                                                       disentanglement_weight=3.0)
    output = run(model, make_batch(model, processor))
    expected = (0.5 * output.loss_siglip + 2.0 * output.loss_ecg_reconstruction + 0.25 * output.loss_mlm
                + 3.0 * output.loss_disentanglement)
    assert float(output.loss) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("variant, terms", [
    ("v1", ["siglip"]),
    ("v2", ["siglip", "ecg_reconstruction"]),
    ("v3", ["siglip", "ecg_reconstruction", "mlm"]),
    ("v4", ["siglip", "ecg_reconstruction", "mlm", "disentanglement"]),
])
def test_each_variant_builds_and_computes_only_its_terms(tokenizer, variant, terms):
    from tamer_hf.families.cgdmer import VARIANTS

    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, **VARIANTS[variant])
    assert model.config.enabled_losses == terms
    assert (model.ecg_decoder is not None) == ("ecg_reconstruction" in terms)
    assert (model.mlm_head is not None) == ("mlm" in terms)
    assert (model.ecg_specific_encoder is not None) == ("disentanglement" in terms)
    output = run(model, make_batch(model, processor))
    for term in ("siglip", "ecg_reconstruction", "mlm", "disentanglement"):
        assert (getattr(output, f"loss_{term}") is not None) == (term in terms), term
    assert float(output.loss) == pytest.approx(sum(float(getattr(output, f"loss_{term}")) for term in terms), rel=1e-6)
    # the decoders read [shared; specific] with disentanglement, the encoder's own tokens without
    if model.ecg_decoder is not None:
        cfg = model.config
        width = 2 * cfg.hidden_size if "disentanglement" in terms else cfg.ecg_hidden_size
        assert model.ecg_decoder.embed.in_features == width


def test_contrastive_on_masked_inputs_reuses_the_masked_passes(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, contrastive_on_masked_inputs=True)
    batch = make_batch(model, processor)
    output = run(model, batch)
    with torch.no_grad():
        masked = model.encode_ecg(batch["input_values"], token_mask_from_mask(batch["ecg_mask"])).shared
        unmasked = model.get_ecg_features(batch["input_values"])
    torch.testing.assert_close(output.ecg_embeds, torch.nn.functional.normalize(masked, dim=-1))
    assert not torch.allclose(output.ecg_embeds, unmasked)


# ----------------------------------------------------------------------------------------------------------------------
# Zero-shot features, collator, sizes


def test_zero_shot_features_are_the_unmasked_shared_features_normalised(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    batch = make_batch(model, processor)
    with torch.no_grad():
        ecg = model.get_ecg_features(input_values=batch["input_values"])
        text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        plain = model(input_values=batch["input_values"], input_ids=batch["input_ids"],
                      attention_mask=batch["attention_mask"])  # eval, no loss: nothing masked
        single = processor(text=REPORTS[2])
        alone = model.get_text_features(input_ids=single["input_ids"], attention_mask=single["attention_mask"])
    assert ecg.shape == text.shape == (4, model.config.hidden_size)
    torch.testing.assert_close(ecg.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(plain.ecg_embeds, ecg)
    torch.testing.assert_close(plain.text_embeds, text)
    assert plain.loss is None and plain.reconstruction is None
    torch.testing.assert_close(alone[0], text[2], rtol=1e-5, atol=1e-6)  # padding does not change a prompt
    torch.testing.assert_close(plain.logits_per_ecg, model.siglip_logit_scale.exp() * ecg @ text.T
                               + model.siglip_logit_bias)
    assert model.config.zero_shot_temperature == model.config.label_temperature == 0.1


def test_report_features_pool_the_words_between_cls_and_sep(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    tokens = processor(text=REPORTS + ["af."])
    with torch.no_grad():
        pooled = model.encode_text(tokens["input_ids"], tokens["attention_mask"]).shared
        hidden = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        shared_tokens = model.shared_encoder(model.text_projection(hidden.last_hidden_state))  # (B, Lt, D)
        for row, length in enumerate(tokens["attention_mask"].sum(dim=1).tolist()):
            words = shared_tokens[row, 1:length - 1].mean(dim=0)  # [CLS] and [SEP] left out
            torch.testing.assert_close(pooled[row], model.text_shared_norm(words[None])[0])


def test_collator_is_deterministic_and_the_model_draws_the_masks_from_the_global_rng(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    ecgs = np.random.default_rng(0).normal(size=(4, 12, 2500)).astype(np.float32)  # 250 Hz: resampled to 5000
    rows = [{"ecg": ecg, "report_id": i} for ecg, i in zip(ecgs, REPORT_IDS.tolist())]
    batch = CgdmerCollator(processor, REPORTS[:3], 250, model.config)(rows)  # draws nothing
    assert batch.keys() == {"input_values", "input_ids", "attention_mask", "mlm_special_tokens_mask", "report_ids"}
    assert batch["input_values"].shape == (4, 12, 5000) and torch.equal(batch["report_ids"], REPORT_IDS)
    special = torch.isin(batch["input_ids"], torch.tensor(processor.tokenizer.all_special_ids))
    assert torch.equal(batch["mlm_special_tokens_mask"], special)

    # the model draws the ECG mask, then the MLM corruption, from the global RNG: reproducible under a seed ...
    torch.manual_seed(4)
    drawn = run(model, batch)
    torch.manual_seed(4)
    again = run(model, batch)
    assert torch.equal(drawn.reconstruction_mask, again.reconstruction_mask) and float(drawn.loss) == float(again.loss)
    assert (drawn.reconstruction_mask.sum(dim=1) == 90).all()
    # ... and the same as the collator's own draws (draw_masks=True, for use outside the loop) under that seed
    torch.manual_seed(4)
    with_masks = CgdmerCollator(processor, REPORTS[:3], 250, model.config, draw_masks=True)(rows)
    assert (with_masks["mlm_labels"][special] == IGNORE_INDEX).all()
    assert torch.equal(with_masks["ecg_mask"], drawn.reconstruction_mask)
    given = run(model, with_masks)
    assert float(given.loss_mlm) == float(drawn.loss_mlm) and float(given.loss) == float(drawn.loss)


def test_the_default_mlm_never_picks_cls_sep_or_padding(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer, mlm_probability=1.0)
    tokens = processor(text=REPORTS)
    torch.manual_seed(0)
    corrupted, labels = model.mask_reports(tokens["input_ids"], tokens["attention_mask"])
    special = torch.isin(tokens["input_ids"], torch.tensor(processor.tokenizer.all_special_ids))
    assert torch.equal(labels == IGNORE_INDEX, special)  # every word picked, no special token or padding
    assert torch.equal(labels[~special], tokens["input_ids"][~special])
    assert model.config.mlm_mask_token_id == processor.tokenizer.mask_token_id
    assert (corrupted == processor.tokenizer.mask_token_id).sum() > 0.6 * (~special).sum()


def test_paper_configuration_sizes():
    with torch.device("meta"):  # counts parameters without allocating them
        model = CgdmerModel(CgdmerConfig())

    def count(*modules):
        return sum(p.numel() for module in modules for p in module.parameters())

    cfg = model.config
    assert (cfg.num_patches_per_lead, cfg.num_patches) == (40, 480)
    assert count(model.ecg_encoder) == 85_161_984  # ViT-B (ST-MEM's encoder) over 125-sample patches
    assert count(model.text_model) == 108_891_648  # MedCPT / BERT-base without the pooler
    assert count(model.ecg_decoder) == pytest.approx(3.33e6, rel=0.01)  # ST-MEM's light decoder
    assert count(model) == 198_594_489


@pytest.mark.parametrize("bad", [
    dict(patch_size=300), dict(ecg_num_heads=5), dict(reconstruction_norm="frame"), dict(text_pooling="max"),
    dict(siglip_reduction="max"), dict(mlm_probability=1.5), dict(mask_time_span=0), dict(mlm_mask_token_id=40000),
    dict(use_siglip=False, use_ecg_reconstruction=False, use_mlm=False, use_disentanglement=False),
])
def test_bad_configuration_values_are_named(bad):
    name = next(iter(bad)).split("_")[0] if len(bad) == 1 else "every loss term"
    with pytest.raises(ValueError, match=name):
        CgdmerConfig(**bad)


# ----------------------------------------------------------------------------------------------------------------------
# Gradients and learning


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    batch = make_batch(model, processor)
    for module in model.modules():  # no dropout, so both runs are the same function
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()

    def gradients():
        model.zero_grad()
        model(**batch, return_loss=True).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys() and len(plain) > 50
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_model_learns_a_small_batch(tokenizer):
    model, processor = tiny_cgdmer_model_and_processor(tokenizer=tokenizer)
    batch = make_batch(model, processor)
    initial = run(model, batch)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        model(**batch, return_loss=True).loss.backward()
        optimizer.step()
    model.eval()
    final = run(model, batch)
    assert float(final.loss) < 0.7 * float(initial.loss), (float(initial.loss), float(final.loss))
    for term in ("siglip", "ecg_reconstruction", "mlm"):
        assert float(final[f"loss_{term}"]) < float(initial[f"loss_{term}"]), term

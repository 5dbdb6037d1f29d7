"""TamerModel: each loss term against a straightforward re-computation, the spectrogram against scipy, gradients."""

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from tamer_hf import TamerConfig, TamerModel
from tamer_hf.testing_utils import tiny_config, tiny_model_and_processor

REPORTS = [
    "sinus rhythm. normal ecg.",
    "atrial fibrillation with rapid ventricular response. st depression.",
    "left bundle branch block.",
]


@pytest.fixture(scope="module")
def model_and_batch():
    model, processor = tiny_model_and_processor(seed=0)
    generator = np.random.default_rng(0)
    ecgs = generator.normal(size=(3, 12, 5000)).cumsum(axis=-1) * 0.01
    batch = processor(ecg=ecgs, text=REPORTS, sampling_rate=500)
    assert (batch["attention_mask"] == 0).any(), "the reports must have padding for these tests"
    return model, batch


def naive_info_nce(a, b, temperature, exclude_positive, ids=None):
    """Symmetric InfoNCE written out with explicit sums (float64); pairs with equal `ids` are not negatives."""
    a = a.double() / a.double().norm(dim=1, keepdim=True)
    b = b.double() / b.double().norm(dim=1, keepdim=True)
    n = a.shape[0]

    def one_direction(x, y):
        total = 0.0
        for i in range(n):
            positive = math.exp(float(x[i] @ y[i]) / temperature)
            negatives = [j for j in range(n) if j != i and (ids is None or ids[j] != ids[i])]
            terms = negatives if exclude_positive else [i] + negatives
            denominator = sum(math.exp(float(x[i] @ y[j]) / temperature) for j in terms)
            total += -math.log(positive / denominator)
        return total / n

    return (one_direction(a, b) + one_direction(b, a)) / 2


def naive_attention(module, queries, keys, key_valid):
    """Single-head attention with the module's own Q, K, V and output weights, written out."""
    w_q, w_k, w_v = module.in_proj_weight.double().chunk(3)
    b_q, b_k, b_v = module.in_proj_bias.double().chunk(3)
    q = queries.double() @ w_q.T + b_q
    k = keys.double() @ w_k.T + b_k
    v = keys.double() @ w_v.T + b_v
    scores = q @ k.T / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~key_valid[None, :], float("-inf"))
    return scores.softmax(dim=-1) @ v @ module.out_proj.weight.double().T + module.out_proj.bias.double()


def naive_token_loss(anchors, contexts, weights, valid, temperature):
    anchors = anchors / anchors.norm(dim=-1, keepdim=True)
    contexts = contexts / contexts.norm(dim=-1, keepdim=True)
    total = 0.0
    indices = [k for k in range(anchors.shape[0]) if valid[k]]
    for k in indices:
        numerator = math.exp(float(anchors[k] @ contexts[k]) / temperature)
        denominator = sum(math.exp(float(anchors[k] @ contexts[j]) / temperature) for j in indices)
        total += float(weights[k]) * -math.log(numerator / denominator)
    return total


def naive_rgwr(model, ecg_tokens, word_features, attention_mask, word_weights):
    rgwr, temperature = model.rgwr, model.config.rgwr_temperature
    word_tokens = model.word_projection(word_features).double()
    total_ecg = total_report = 0.0
    for i in range(ecg_tokens.shape[0]):
        length = int(attention_mask[i].sum())
        attended = torch.arange(attention_mask.shape[1]) < length
        words = attended.clone()
        words[0] = False  # [CLS]
        words[length - 1] = False  # [SEP]
        tokens = ecg_tokens[i].double()
        ecg_context = naive_attention(rgwr.ecg_to_words, tokens, word_tokens[i], attended)
        word_context = naive_attention(rgwr.words_to_ecg, word_tokens[i], tokens, torch.ones(len(tokens), dtype=torch.bool))
        uniform = torch.full((len(tokens),), 1.0 / len(tokens))
        total_ecg += naive_token_loss(tokens, ecg_context, uniform, torch.ones(len(tokens), dtype=torch.bool), temperature)
        total_report += naive_token_loss(word_tokens[i], word_context, word_weights[i], words, temperature)
    n = ecg_tokens.shape[0]
    return (total_ecg / n + total_report / n) / 2


@pytest.mark.parametrize("exclude_positive", [False, True])
def test_each_loss_term_equals_a_straightforward_computation(model_and_batch, exclude_positive):
    model, batch = model_and_batch
    model.config.exclude_positive_from_denominator = exclude_positive
    try:
        with torch.no_grad():
            output = model(**batch, return_loss=True)  # eval mode: the two UECR dropout views are identical
            ecg_tokens, spec_tokens, ecg_global, spec_global = model.encode_ecg(batch["input_values"])
            ecg_embeds = model.wlai(ecg_tokens, spec_tokens)
            encoding = model.encode_text(batch["input_ids"], batch["attention_mask"])
            text_embeds = model.text_projection(encoding.pooled)
    finally:
        model.config.exclude_positive_from_denominator = False
    cfg = model.config
    with torch.no_grad():
        expected = {
            "rlca": naive_info_nce(ecg_global, spec_global, cfg.rlca_temperature, exclude_positive),
            "uecr": naive_info_nce(ecg_embeds, ecg_embeds, cfg.uecr_temperature, exclude_positive),
            "rada": naive_info_nce(ecg_embeds, text_embeds, cfg.rada_temperature, exclude_positive),
            "rgwr": naive_rgwr(model, ecg_tokens, encoding.last_hidden_state, batch["attention_mask"], encoding.word_weights),
        }
    for term, value in expected.items():
        assert float(output[f"loss_{term}"]) == pytest.approx(value, rel=1e-5, abs=1e-5), term
    assert float(output.loss) == pytest.approx(sum(expected.values()), rel=1e-5)


@pytest.mark.parametrize("exclude_positive", [False, True])
def test_duplicate_reports_are_not_negatives_in_rada(model_and_batch, exclude_positive):
    model, batch = model_and_batch
    report_ids = torch.tensor([5, 9, 5])  # records 0 and 2 share their report
    model.config.exclude_positive_from_denominator = exclude_positive
    try:
        with torch.no_grad():
            masked = model(**batch, return_loss=True, report_ids=report_ids).loss_rada
            plain = model(**batch, return_loss=True).loss_rada
            ecg_tokens, spec_tokens, _, _ = model.encode_ecg(batch["input_values"])
            ecg_embeds = model.wlai(ecg_tokens, spec_tokens)
            text_embeds = model.get_text_features(batch["input_ids"], batch["attention_mask"])
            expected = naive_info_nce(ecg_embeds, text_embeds, model.config.rada_temperature, exclude_positive, [5, 9, 5])
    finally:
        model.config.exclude_positive_from_denominator = False
    assert float(masked) == pytest.approx(expected, rel=1e-5)
    assert abs(float(masked) - float(plain)) > 1e-4


def test_word_weights_are_last_layer_cls_attention_over_words_only(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        encoding = model.encode_text(batch["input_ids"], batch["attention_mask"])
        attentions = model.text_model(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_attentions=True).attentions
    cls_row = attentions[-1][:, :, 0, :].mean(dim=1)  # (B, L)
    for i in range(len(REPORTS)):
        length = int(batch["attention_mask"][i].sum())
        expected = torch.zeros_like(cls_row[i])
        expected[1 : length - 1] = cls_row[i, 1 : length - 1] / cls_row[i, 1 : length - 1].sum()
        torch.testing.assert_close(encoding.word_weights[i], expected, rtol=1e-5, atol=1e-6)


def test_total_loss_is_the_sum_of_enabled_terms_only():
    model, processor = tiny_model_and_processor(seed=1, use_rlca=False, use_rgwr=False)
    batch = processor(ecg=np.random.default_rng(1).normal(size=(2, 12, 5000)), text=REPORTS[:2], sampling_rate=500)
    output = model(**batch, return_loss=True)
    assert output.loss_rlca is None and output.loss_rgwr is None
    assert float(output.loss) == pytest.approx(float(output.loss_uecr + output.loss_rada), rel=1e-6)
    assert model.rgwr is None and model.word_projection is None


def test_uecr_views_are_two_dropout_samples_in_training_mode():
    model, processor = tiny_model_and_processor(seed=2, uecr_dropout=0.5)
    batch = processor(ecg=np.random.default_rng(2).normal(size=(4, 12, 5000)), sampling_rate=500)
    model.train()  # batch-norm uses batch statistics: deterministic for a fixed batch
    with torch.no_grad():
        ecg_tokens, spec_tokens, _, _ = model.encode_ecg(batch["input_values"])
        embeds = model.wlai(ecg_tokens, spec_tokens)
        identical_views = naive_info_nce(embeds, embeds, model.config.uecr_temperature, False)
        with_dropout = float(model(**batch, return_loss=True).loss_uecr)
        model.config.uecr_dropout = 0.0
        without_dropout = float(model(**batch, return_loss=True).loss_uecr)
    assert without_dropout == pytest.approx(identical_views, rel=1e-5)
    assert abs(with_dropout - identical_views) > 1e-3


def test_spectrogram_equals_scipy_stft_magnitude():
    model = TamerModel(tiny_config())
    signal = np.random.default_rng(3).normal(size=(2, 12, 5000)).astype(np.float32)
    ours = model.spectrogram(torch.from_numpy(signal)).numpy()
    _, _, reference = scipy.signal.stft(signal, fs=500, window="hann", nperseg=125, noverlap=62, nfft=125)
    reference = np.abs(reference)
    assert ours.shape == reference.shape == (2, 12, 63, 81)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * reference.max())


def test_paper_configuration_token_counts_and_size():
    config = TamerConfig()
    model = TamerModel(config)
    assert model.num_ecg_tokens == 313 and model.spectrogram_shape == (63, 81)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    # paper: 122.05 M parameters in all, ~12.6 M of them outside the frozen 109.5 M MedCPT encoder
    assert 118e6 < total < 126e6 and 10e6 < trainable < 15e6
    with torch.no_grad():
        features = model.eval().get_ecg_features(torch.rand(1, 12, 5000))
    assert features.shape == (1, 256)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(1))


def test_text_encoder_is_frozen_and_everything_else_learns():
    model, processor = tiny_model_and_processor(seed=4)
    batch = processor(ecg=np.random.default_rng(4).normal(size=(3, 12, 5000)), text=REPORTS, sampling_rate=500)
    model.train()
    assert not model.text_model.training
    assert all(module.training for name, module in model.named_modules() if not name.startswith("text_model"))
    model(**batch).loss.backward()
    for name, parameter in model.named_parameters():
        if name.startswith("text_model."):
            assert not parameter.requires_grad and parameter.grad is None, name
        else:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_the_same_gradients():
    model, processor = tiny_model_and_processor(seed=5, uecr_dropout=0.0)
    batch = processor(ecg=np.random.default_rng(5).normal(size=(2, 12, 5000)), text=REPORTS[:2], sampling_rate=500)
    model.train()

    def gradients():
        model.zero_grad()
        model(**batch).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert model.ecg_encoder.blocks[0].gradient_checkpointing
    checkpointed = gradients()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6)


def test_features_are_normalised_and_scores_are_cosines(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        ecg = model.get_ecg_features(batch["input_values"])
        text = model.get_text_features(batch["input_ids"], batch["attention_mask"])
        output = model(**batch)
    torch.testing.assert_close(ecg.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(output.logits_per_ecg, ecg @ text.T / model.config.rada_temperature)
    torch.testing.assert_close(output.logits_per_text, output.logits_per_ecg.T)
    cosine = F.cosine_similarity(ecg[:, None], text[None], dim=-1)
    torch.testing.assert_close(output.logits_per_ecg * model.config.rada_temperature, cosine, rtol=1e-5, atol=1e-6)


def test_wrong_input_shape_is_a_clear_error(model_and_batch):
    model, _ = model_and_batch
    with pytest.raises(ValueError, match=r"shape \(batch, 12, 5000\).*got \(2, 12, 4000\)"):
        model.get_ecg_features(torch.zeros(2, 12, 4000))


def test_config_rejects_inconsistent_values():
    with pytest.raises(ValueError, match="divisible by wlai_num_heads"):
        TamerConfig(projection_dim=10, wlai_num_heads=4)
    with pytest.raises(ValueError, match="text_pooling"):
        TamerConfig(text_pooling="mean")


def test_report_encoder_is_in_eval_mode_from_construction():
    model = TamerModel(tiny_config())  # neither train() nor eval() called: as the pre-training text cache sees it
    assert not model.text_model.training
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    torch.testing.assert_close(model.encode_text(ids).pooled, model.encode_text(ids).pooled, rtol=0, atol=0)

"""CG-DMER: contrastive-generative pre-training of disentangled ECG and report representations.

"CG-DMER: Hybrid Contrastive-Generative Framework for Disentangled Multimodal ECG Representation Learning" (arXiv
2602.21154, ICASSP 2026). The model's pieces, top-down (shapes for the default configuration: L = 12 leads x T = 40
patches of 125 samples = N = 480 patches, K = 120 kept, D = 256):

    input_values (B, 12, 5000)
        └─ CgdmerEcgEncoder: per-lead patches (B, 480, 125) → Linear → + lead embedding + time positions
             → [spatio-temporal mask: keep K] → pre-LN transformer → (B, N or K, 768) → ecg_projection (B, ., D)
    report tokens (MLM-masked by the collator for the masked pass)
        └─ BERT (MedCPT shape) → (B, Lt, 768) → text_projection (B, Lt, D)
    disentanglement (MISA): shared_encoder (the same weights for both modalities) and ecg_/text_specific_encoder
        per token; pooled (mean over tokens) shared features → SigLIP (shared features only) and zero-shot
    CgdmerEcgDecoder on [shared; specific] (or the encoder tokens without disentanglement): mask tokens, lead and
        time positions, pre-LN blocks → (B, N, 125) → MSE on the masked patches only
    CgdmerMLMHead on [shared; specific] report tokens → vocabulary logits (decoder tied to the word embeddings)
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_cgdmer import CgdmerConfig
from .ecg_classification import ECGClassificationMixin, classification_head, unused_keys_pattern, without_modules
from .ecg_layers import TransformerLayer, sinusoidal_position_embedding
from .ecg_losses import GatherFn, check_pairs, siglip_loss
from .ecg_masking import (IGNORE_INDEX, TokenMask, keep_tokens, mask_tokens_for_mlm, spatiotemporal_mask,
                          token_mask_from_mask, unshuffle_tokens)
from .ecg_model_inputs import check_input_values, check_text_inputs
from .ecg_saving import NormalPermissionsMixin

# ----------------------------------------------------------------------------------------------------------------------
# ECG encoder and decoder over lead x time patches


def patchify(input_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, L, S) -> (B, L * T, patch_size), lead-major: patch index = lead * T + t (T = S / patch_size)."""
    batch, leads, samples = input_values.shape
    return input_values.reshape(batch, leads * (samples // patch_size), patch_size)


def lead_time_positions(lead_embedding: nn.Embedding, num_times: int) -> torch.Tensor:
    """(L * T, D): the learned embedding of each patch's lead plus the sine-cosine position of its time index
    (ST-MEM's spatial and temporal embeddings), lead-major as `patchify`."""
    leads, dim = lead_embedding.weight.shape
    weight = lead_embedding.weight
    times = sinusoidal_position_embedding(num_times, dim, device=weight.device, dtype=weight.dtype)  # (T, D)
    return (weight[:, None, :] + times[None, :, :]).reshape(leads * num_times, dim)


class CgdmerEcgEncoder(nn.Module):
    """Linear patch embedding, lead and time positions, pre-LN transformer (a ViT over lead x time patches, after
    ST-MEM). With a token mask the transformer sees only the kept patches (MAE)."""

    def __init__(self, config: CgdmerConfig):
        super().__init__()
        dim = config.ecg_hidden_size
        self.patch_size, self.num_times = config.patch_size, config.num_patches_per_lead
        self.patch_embedding = nn.Linear(config.patch_size, dim)
        self.lead_embedding = nn.Embedding(config.num_leads, dim)
        self.dropout = nn.Dropout(config.ecg_dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, config.ecg_num_heads, config.ecg_intermediate_size, config.ecg_dropout,
                             config.ecg_attention_dropout, norm_first=True, layer_norm_eps=config.ecg_layer_norm_eps)
            for _ in range(config.ecg_num_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.ecg_layer_norm_eps)

    def forward(self, input_values, token_mask: TokenMask | None = None):
        patches = patchify(input_values, self.patch_size)  # (B, N, P)
        tokens = self.patch_embedding(patches) + lead_time_positions(self.lead_embedding, self.num_times)  # (B, N, D)
        if token_mask is not None:
            tokens = keep_tokens(tokens, token_mask.keep_indices)  # (B, K, D)
        hidden = self.dropout(tokens)
        for layer in self.layers:
            hidden = layer(hidden)
        return self.norm(hidden)


class CgdmerEcgDecoder(nn.Module):
    """The light reconstruction decoder (ST-MEM / MAE): Linear to its width, a learned mask token at every hidden
    patch, its own lead and time positions, pre-LN blocks over all L x T patches, LayerNorm, Linear to the patch."""

    def __init__(self, config: CgdmerConfig, input_size: int):
        super().__init__()
        dim = config.decoder_hidden_size
        self.num_times = config.num_patches_per_lead
        self.embed = nn.Linear(input_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.lead_embedding = nn.Embedding(config.num_leads, dim)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, config.decoder_num_heads, config.decoder_intermediate_size, norm_first=True,
                             layer_norm_eps=config.ecg_layer_norm_eps)
            for _ in range(config.decoder_num_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.ecg_layer_norm_eps)
        self.predict = nn.Linear(dim, config.patch_size)

    def forward(self, kept_tokens, restore_indices):
        # kept_tokens (B, K, input_size), restore_indices (B, N)
        hidden = unshuffle_tokens(self.embed(kept_tokens), self.mask_token, restore_indices)  # (B, N, d)
        hidden = hidden + lead_time_positions(self.lead_embedding, self.num_times)
        for layer in self.layers:
            hidden = layer(hidden)
        return self.predict(self.norm(hidden))  # (B, N, P)


def reconstruction_targets(input_values: torch.Tensor, patch_size: int, norm: str, eps: float) -> torch.Tensor:
    """The patches to rebuild, (B, L * T, P): each patch standardised over its own samples (`"patch"`, MAE's
    norm_pix_loss), each lead over the record (`"lead"`) or as input (`"none"`); population variance."""
    signal = input_values
    if norm == "lead":
        signal = (signal - signal.mean(dim=-1, keepdim=True)) / (signal.var(dim=-1, keepdim=True, unbiased=False)
                                                                 + eps).sqrt()
    patches = patchify(signal, patch_size)  # (B, N, P)
    if norm == "patch":
        patches = (patches - patches.mean(dim=-1, keepdim=True)) / (
            patches.var(dim=-1, keepdim=True, unbiased=False) + eps).sqrt()
    return patches


def word_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, Lt) bool: the tokens of each BERT input between its first ([CLS]) and its last real token ([SEP]); a
    report of no word keeps those two."""
    last = attention_mask.sum(dim=1, keepdim=True) - 1  # (B, 1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]
    words = (positions > 0) & (positions < last)
    return torch.where(words.any(dim=1, keepdim=True), words, attention_mask.bool())


# ----------------------------------------------------------------------------------------------------------------------
# Disentanglement and heads


class CgdmerFeatureEncoder(nn.Module):
    """A modality-shared or modality-specific encoder: Linear, GELU, Linear, applied to every token (MISA's
    shared / private encoders, as an MLP)."""

    def __init__(self, config: CgdmerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.feature_encoder_intermediate_size)
        self.fc2 = nn.Linear(config.feature_encoder_intermediate_size, config.hidden_size)

    def forward(self, tokens):
        return self.fc2(F.gelu(self.fc1(tokens)))


class CgdmerMLMHead(nn.Module):
    """BERT's LM head on the report tokens: dense + GELU + LayerNorm to the text width, then the vocabulary decoder,
    whose weight is the text encoder's word-embedding matrix (tied, as BERT) plus its own bias."""

    def __init__(self, config: CgdmerConfig, input_size: int):
        super().__init__()
        text = config.text_config
        self.dense = nn.Linear(input_size, text.hidden_size)
        self.norm = nn.LayerNorm(text.hidden_size, eps=text.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(text.vocab_size))

    def forward(self, tokens, word_embeddings):
        return F.linear(self.norm(F.gelu(self.dense(tokens))), word_embeddings, self.bias)  # (B, Lt, V)


# ----------------------------------------------------------------------------------------------------------------------
# Losses


def masked_mean(total: torch.Tensor, count: torch.Tensor, gather: GatherFn | None = None) -> torch.Tensor:
    """`total / count` where both are this process's sums; with `gather`, the mean over the global batch: the
    counts of all processes are gathered and this process returns W * total / global count, so the mean over the W
    processes (DDP's average) is the global sum over the global count, whatever each process holds."""
    count = count.to(total.dtype)
    if gather is None:
        return total / count.clamp_min(1)
    counts, _ = gather(count.reshape(1))  # (W,)
    return total * counts.numel() / counts.sum().clamp_min(1)


def reconstruction_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                        gather: GatherFn | None = None) -> torch.Tensor:
    """Mean squared error of each patch (over its samples), averaged over the masked patches only (mask (B, N): 1 =
    masked), over the global batch with `gather`."""
    per_patch = ((predictions - targets) ** 2).mean(dim=-1)  # (B, N)
    return masked_mean((per_patch * mask).sum(), mask.sum(), gather)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, gather: GatherFn | None = None) -> torch.Tensor:
    """Cross-entropy averaged over the masked (labelled) report tokens, over the global batch with `gather`."""
    logits = logits.flatten(0, 1).to(torch.promote_types(logits.dtype, torch.float32))  # fp16 / bf16 -> fp32
    total = F.cross_entropy(logits, labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    return masked_mean(total, (labels != IGNORE_INDEX).sum(), gather)


def orthogonality_loss(features_a: torch.Tensor, features_b: torch.Tensor, eps: float) -> torch.Tensor:
    """MISA's soft orthogonality ("difference loss"): centre each feature over the batch, scale each row to unit
    length, and average the squared entries of A^T B (D_a x D_b), i.e. ||A^T B||_F^2 / (D_a D_b): 0 when no
    dimension of one feature correlates with any dimension of the other over the batch. (MISA detaches the row
    norms; here they are differentiated.)"""
    a = features_a - features_a.mean(dim=0, keepdim=True)
    b = features_b - features_b.mean(dim=0, keepdim=True)
    a = a / (a.norm(dim=1, keepdim=True) + eps)  # (B, D_a)
    b = b / (b.norm(dim=1, keepdim=True) + eps)  # (B, D_b)
    return (a.T @ b).pow(2).mean()


# ----------------------------------------------------------------------------------------------------------------------
# Model


@dataclass
class CgdmerOutput(ModelOutput):
    """Outputs of [`CgdmerModel`]. `ecg_embeds` / `text_embeds`: the L2-normalised shared features (what
    `get_*_features` return); `logits_per_ecg`: the SigLIP logits scale * cos + bias of this process's pairs."""

    loss: torch.FloatTensor | None = None
    loss_siglip: torch.FloatTensor | None = None
    loss_ecg_reconstruction: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    loss_disentanglement: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    ecg_specific_embeds: torch.FloatTensor | None = None
    text_specific_embeds: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    reconstruction_mask: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None


@dataclass
class CgdmerModalityFeatures(ModelOutput):
    """One modality through its encoder, projection and the shared / specific encoders: per-token features
    (B, n, D) and their pooled means (B, D); `decoder_input` is what the reconstruction head of the modality reads."""

    tokens: torch.FloatTensor | None = None  # the encoder's output tokens (B, n, encoder width)
    shared: torch.FloatTensor | None = None  # (B, D) pooled
    specific: torch.FloatTensor | None = None  # (B, D) pooled, with disentanglement
    decoder_input: torch.FloatTensor | None = None  # (B, n, 2 D) or the encoder tokens


class CgdmerPreTrainedModel(NormalPermissionsMixin, PreTrainedModel):
    config: CgdmerConfig
    base_model_prefix = "cgdmer"
    main_input_name = "input_values"
    input_modalities = ("time", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerLayer", "BertLayer"]
    _supports_sdpa = True  # the text encoder's attention (`attn_implementation="sdpa"`); the ECG layers are ours

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, CgdmerEcgEncoder):
            # MAE / ST-MEM: the patch embedding as a Linear layer of its fan-in (xavier), not BERT's 0.02, so the
            # patch content is not drowned by the unit-amplitude sine-cosine positions at the start
            init.xavier_uniform_(module.patch_embedding.weight)
            init.zeros_(module.patch_embedding.bias)
        elif isinstance(module, CgdmerEcgDecoder):
            init.normal_(module.mask_token, std=std)
        elif isinstance(module, CgdmerMLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, CgdmerModel):
            init.constant_(module.siglip_logit_scale, self.config.siglip_logit_scale_init)
            init.constant_(module.siglip_logit_bias, self.config.siglip_logit_bias_init)


class CgdmerModel(CgdmerPreTrainedModel):
    r"""CG-DMER with its four pre-training terms and the zero-shot embeddings.

    What each term sees:

    - The random masks are drawn here, in `forward`, from torch's global RNG (first the spatio-temporal patch mask,
      then the MLM corruption of the reports), unless given (`ecg_mask`; `mlm_input_ids` + `mlm_labels`). Drawing
      them at the step rather than in the data collator keeps a resumed run exact: Accelerate's data loader
      collates one batch ahead, so collator draws would be taken before the checkpoint of the previous step.
    - `ecg_reconstruction`: the encoder sees the kept patches only; the decoder rebuilds all patches from the
      modality's [shared; specific] tokens (the encoder's tokens without disentanglement); MSE on the hidden ones.
    - `mlm`: the text encoder reads the corrupted report; the MLM head predicts the masked tokens from the report's
      [shared; specific] tokens.
    - `siglip`: SigLIP between the pooled, L2-normalised shared features of the ECGs and the reports (an unmasked
      pass of both unless `contrastive_on_masked_inputs`); with `report_ids`, identical reports count as positives.
    - `disentanglement`: MISA's soft orthogonality between the pooled shared and specific features of each modality
      (and between the two specific ones), on the same pass as SigLIP.

    Across processes (`gather`): SigLIP scores this process's ECGs against the reports of the global batch;
    orthogonality is computed on the gathered global batch; reconstruction and MLM divide by the global number of
    masked patches / tokens. Averaged over processes, loss and gradients equal one process holding the whole batch.
    """

    def __init__(self, config: CgdmerConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.ecg_encoder = CgdmerEcgEncoder(config)
        self.text_model = BertModel(config.text_config, add_pooling_layer=False)
        if config.freeze_text_encoder:
            self.text_model.requires_grad_(False)
        self.ecg_projection = nn.Linear(config.ecg_hidden_size, dim)
        self.text_projection = nn.Linear(config.text_config.hidden_size, dim)
        self.shared_encoder = CgdmerFeatureEncoder(config)  # one set of weights for ECG and text [MISA]
        self.ecg_shared_norm = self.text_shared_norm = None
        if config.shared_batch_norm:
            self.ecg_shared_norm = nn.BatchNorm1d(dim, affine=False)
            self.text_shared_norm = nn.BatchNorm1d(dim, affine=False)
        self.ecg_specific_encoder = self.text_specific_encoder = None
        if config.use_disentanglement:
            self.ecg_specific_encoder = CgdmerFeatureEncoder(config)
            self.text_specific_encoder = CgdmerFeatureEncoder(config)
        disentangled = config.use_disentanglement
        self.ecg_decoder = None
        if config.use_ecg_reconstruction:
            self.ecg_decoder = CgdmerEcgDecoder(config, 2 * dim if disentangled else config.ecg_hidden_size)
        self.mlm_head = None
        if config.use_mlm:
            self.mlm_head = CgdmerMLMHead(config, 2 * dim if disentangled else config.text_config.hidden_size)
        learnable = config.siglip_learnable
        self.siglip_logit_scale = nn.Parameter(torch.tensor(config.siglip_logit_scale_init), requires_grad=learnable)
        self.siglip_logit_bias = nn.Parameter(torch.tensor(config.siglip_logit_bias_init), requires_grad=learnable)
        self.post_init()

    def train(self, mode: bool = True):
        """A frozen text encoder stays in eval mode (no dropout)."""
        super().train(mode)
        if self.config.freeze_text_encoder:
            self.text_model.eval()
        return self

    # ------------------------------------------------------------------ the two modalities
    def _split(self, tokens, projected, specific_encoder, token_weights, shared_norm) -> CgdmerModalityFeatures:
        """Shared / specific features of projected tokens (B, n, D); pooled with `token_weights` (B, n) summing to 1."""
        shared_tokens = self.shared_encoder(projected)  # (B, n, D)
        shared = torch.einsum("bn,bnd->bd", token_weights, shared_tokens)
        if shared_norm is not None:
            shared = shared_norm(shared)
        if specific_encoder is None:
            return CgdmerModalityFeatures(tokens=tokens, shared=shared, decoder_input=tokens)
        specific_tokens = specific_encoder(projected)  # (B, n, D)
        specific = torch.einsum("bn,bnd->bd", token_weights, specific_tokens)
        return CgdmerModalityFeatures(tokens=tokens, shared=shared, specific=specific,
                                      decoder_input=torch.cat([shared_tokens, specific_tokens], dim=-1))

    def encode_ecg(self, input_values, token_mask: TokenMask | None = None) -> CgdmerModalityFeatures:
        """ECG (B, 12, 5000), all patches or the kept ones -> encoder tokens, shared / specific features."""
        input_values = check_input_values(input_values, self.config.num_leads, self.config.num_samples, self.dtype)
        tokens = self.ecg_encoder(input_values, token_mask)  # (B, n, ecg width)
        weights = tokens.new_full(tokens.shape[:2], 1.0 / tokens.shape[1])  # mean over the patches
        return self._split(tokens, self.ecg_projection(tokens), self.ecg_specific_encoder, weights,
                           self.ecg_shared_norm)

    def encode_text(self, input_ids, attention_mask=None) -> CgdmerModalityFeatures:
        """Report tokens (B, Lt) -> BERT tokens, shared / specific features (pooled over the words, or [CLS])."""
        check_text_inputs(input_ids, attention_mask, self.config.text_config)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tokens = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, Lt, H)
        if self.config.text_pooling == "cls":
            weights = torch.zeros_like(attention_mask, dtype=tokens.dtype)
            weights[:, 0] = 1.0
        else:  # the words: between [CLS] and [SEP], so a 2-word prompt is not mostly [CLS] and [SEP]
            weights = word_mask(attention_mask).to(tokens.dtype)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1)
        return self._split(tokens, self.text_projection(tokens), self.text_specific_encoder, weights,
                           self.text_shared_norm)

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        """Unmasked ECG -> pooled shared feature before L2 normalisation: (B, hidden_size) (what the fine-tuning
        head reads)."""
        return self.encode_ecg(input_values).shared

    def get_ecg_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """`ecg_embedding`, L2-normalised: (B, hidden_size). Zero-shot score = cosine."""
        return F.normalize(self.ecg_embedding(input_values), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Report / prompt -> pooled shared feature, L2-normalised: (B, hidden_size)."""
        return F.normalize(self.encode_text(input_ids, attention_mask).shared, dim=-1)

    # ------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        mlm_special_tokens_mask: torch.Tensor | None = None,
        ecg_mask: torch.Tensor | None = None,
        report_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        gather: GatherFn | None = None,
    ) -> CgdmerOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(B, num_leads, num_samples)`): ECGs from the feature extractor.
        input_ids, attention_mask (`(B, Lt)`): the report of each ECG, unmasked.
        mlm_input_ids, mlm_labels (`(B, Lt)`, *optional*): the same reports MLM-corrupted, and the original ids at the
            corrupted positions (-100 elsewhere): the `mlm` term. Drawn here when omitted (BERT's 80 / 10 / 10 with
            `mlm_mask_token_id`, `mlm_probability`).
        mlm_special_tokens_mask (`(B, Lt)`, *optional*): 1 on the tokens MLM never picks (the tokenizer's special
            tokens); default: the first and the last token of each report ([CLS], [SEP]) and the padding.
        ecg_mask (`(B, num_patches)`, *optional*): 1 on the patches to hide, the same count in every row (default:
            `spatiotemporal_mask` drawn here): the `ecg_reconstruction` term.
        report_ids (`(B,)`, *optional*): equal ids = identical report text; SigLIP then counts those pairs as
            positives.
        return_loss (`bool`, *optional*): compute the enabled loss terms (default: when the model is training).
        gather (*optional*): the batch-level terms over the global batch of all processes
            (`tamer_hf.distributed.gather_with_grad`).
        """
        cfg = self.config
        return_loss = self.training if return_loss is None else return_loss
        if return_loss and input_ids is None:
            raise ValueError("CG-DMER's losses need the reports: pass input_ids (and attention_mask).")
        input_values = check_input_values(input_values, cfg.num_leads, cfg.num_samples, self.dtype)
        if input_ids is not None:  # before the MLM corruption copies them
            check_text_inputs(input_ids, attention_mask, cfg.text_config)
        if attention_mask is None and input_ids is not None:
            attention_mask = torch.ones_like(input_ids)

        # the random masks of this step (given, or drawn now: the ECG mask first, then the MLM corruption)
        if return_loss and cfg.use_ecg_reconstruction and ecg_mask is None:
            ecg_mask = spatiotemporal_mask(input_values.shape[0], cfg.num_leads, cfg.num_patches_per_lead,
                                           cfg.mask_ratio, cfg.mask_lead_ratio, cfg.mask_time_ratio,
                                           cfg.mask_time_span).mask  # (B, L * T)
        if return_loss and cfg.use_mlm and mlm_input_ids is None:
            mlm_input_ids, mlm_labels = self.mask_reports(input_ids, attention_mask, mlm_special_tokens_mask)

        # masked passes (the generative terms)
        ecg_masked = token_mask = None
        if return_loss and cfg.use_ecg_reconstruction:
            token_mask = token_mask_from_mask(ecg_mask.to(input_values.device))
            ecg_masked = self.encode_ecg(input_values, token_mask)
        text_masked = None
        if return_loss and cfg.use_mlm:
            text_masked = self.encode_text(mlm_input_ids, attention_mask)

        # the aligned (and disentangled) pass: unmasked, or the masked passes when configured so
        if cfg.contrastive_on_masked_inputs and ecg_masked is not None:
            ecg = ecg_masked
        else:
            ecg = self.encode_ecg(input_values)
        text = None
        if input_ids is not None:
            text = text_masked if cfg.contrastive_on_masked_inputs and text_masked is not None else \
                self.encode_text(input_ids, attention_mask)
        ecg_embeds = F.normalize(ecg.shared, dim=-1)  # (B, D)
        text_embeds = F.normalize(text.shared, dim=-1) if text is not None else None
        logit_scale = self.siglip_logit_scale.exp()
        logits_per_ecg = None
        if text_embeds is not None:
            logits_per_ecg = logit_scale * ecg_embeds @ text_embeds.T + self.siglip_logit_bias  # (B, B)

        reconstruction = mlm_logits = None
        if ecg_masked is not None:
            reconstruction = self.ecg_decoder(ecg_masked.decoder_input, token_mask.restore_indices)  # (B, N, P)
        if text_masked is not None and mlm_labels is not None:
            mlm_logits = self.mlm_head(text_masked.decoder_input, self.text_model.get_input_embeddings().weight)

        losses = {}
        if return_loss:
            if cfg.use_siglip:
                losses["siglip"] = siglip_loss(ecg_embeds, text_embeds, logit_scale, self.siglip_logit_bias,
                                               ids_a=report_ids, ids_b=report_ids, reduction=cfg.siglip_reduction,
                                               gather=gather)
            if reconstruction is not None:
                targets = reconstruction_targets(input_values, cfg.patch_size, cfg.reconstruction_norm,
                                                 cfg.reconstruction_norm_eps)
                losses["ecg_reconstruction"] = reconstruction_loss(reconstruction, targets.to(reconstruction.dtype),
                                                                   token_mask.mask.to(reconstruction.dtype), gather)
            if mlm_logits is not None:
                losses["mlm"] = mlm_loss(mlm_logits, mlm_labels, gather)
            if cfg.use_disentanglement:
                losses["disentanglement"] = self.disentanglement_loss(ecg, text, gather)
        total = None
        if losses:
            total = sum(getattr(cfg, f"{term}_weight") * value for term, value in losses.items())
        return CgdmerOutput(
            loss=total,
            loss_siglip=losses.get("siglip"),
            loss_ecg_reconstruction=losses.get("ecg_reconstruction"),
            loss_mlm=losses.get("mlm"),
            loss_disentanglement=losses.get("disentanglement"),
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_ecg.T if logits_per_ecg is not None else None,
            ecg_specific_embeds=ecg.specific,
            text_specific_embeds=text.specific if text is not None else None,
            reconstruction=reconstruction,
            reconstruction_mask=token_mask.mask if token_mask is not None else None,
            mlm_logits=mlm_logits,
        )

    def mask_reports(self, input_ids, attention_mask, special_tokens_mask=None):
        """BERT's MLM corruption of the reports from torch's global RNG: (corrupted ids, labels), (B, Lt) each."""
        cfg = self.config
        never = attention_mask == 0  # (B, Lt) padding
        if special_tokens_mask is not None:
            never = never | special_tokens_mask.bool()
        else:  # [CLS] first, [SEP] last
            never = never | ~word_mask(attention_mask)
        return mask_tokens_for_mlm(input_ids, cfg.mlm_mask_token_id, cfg.text_config.vocab_size, cfg.mlm_probability,
                                   never)

    def disentanglement_loss(self, ecg: CgdmerModalityFeatures, text: CgdmerModalityFeatures,
                             gather: GatherFn | None = None) -> torch.Tensor:
        """orth(shared_ecg, specific_ecg) + orth(shared_text, specific_text) [+ orth(specific_ecg, specific_text)],
        each `orthogonality_loss` over the global batch (gathered with `gather`)."""
        eps = self.config.orthogonality_eps

        def rows(features):
            return features if gather is None else gather(features)[0]

        ecg_shared, ecg_specific = rows(ecg.shared), rows(ecg.specific)
        check_pairs(ecg_shared.shape[0], "The disentanglement (batch-centred orthogonality) loss")
        text_shared, text_specific = rows(text.shared), rows(text.specific)
        loss = orthogonality_loss(ecg_shared, ecg_specific, eps) + orthogonality_loss(text_shared, text_specific, eps)
        if self.config.orthogonality_between_specific:
            loss = loss + orthogonality_loss(ecg_specific, text_specific, eps)
        return loss

    # ------------------------------------------------------------------ construction from a pretrained text encoder
    @classmethod
    def from_text_pretrained(cls, text_model_name_or_path: str, **config_kwargs) -> "CgdmerModel":
        """A randomly initialised CG-DMER whose report encoder starts from a pretrained BERT checkpoint (e.g.
        `ncbi/MedCPT-Query-Encoder`). Saved CG-DMER checkpoints hold the encoder, so loading one never fetches it."""
        text_model = BertModel.from_pretrained(text_model_name_or_path, add_pooling_layer=False)
        model = cls(CgdmerConfig(text_config=text_model.config.to_dict(), **config_kwargs))
        model.text_model.load_state_dict(text_model.state_dict())
        return model


# ----------------------------------------------------------------------------------------------------------------------
# Fine-tuning head

# what diagnosis never runs: the report side, the ECG-specific encoder and the reconstruction / MLM heads
CGDMER_UNUSED_FOR_CLASSIFICATION = ("text_model", "text_projection", "text_shared_norm", "text_specific_encoder",
                                    "ecg_specific_encoder", "ecg_decoder", "mlm_head")


class CgdmerForECGClassification(ECGClassificationMixin, CgdmerPreTrainedModel):
    """CG-DMER's ECG encoder, projection and shared encoder (`CgdmerModel.ecg_embedding`: the pooled shared feature
    that zero-shot scores, before normalisation) and the shared multi-label head (`ecg_classification.py`). The
    report side, the ECG-specific encoder (modality-private by design, MISA) and the reconstruction and MLM heads are
    not built.

    `CgdmerForECGClassification.from_pretrained(pretrained_cgdmer_folder, num_labels=C, id2label=...)` loads the
    pre-trained weights into `self.cgdmer` and initialises `classifier`. Auto class: `AutoModelForAudioClassification`.
    """

    input_modalities = ("time",)
    _keys_to_ignore_on_load_unexpected = [unused_keys_pattern(CGDMER_UNUSED_FOR_CLASSIFICATION)]

    def __init__(self, config: CgdmerConfig):
        super().__init__(config)
        self.cgdmer = without_modules(CgdmerModel(config), CGDMER_UNUSED_FOR_CLASSIFICATION)
        self.cgdmer.ecg_specific_encoder = None  # encode_ecg then computes the shared feature only
        self.classifier = classification_head(config, config.hidden_size)
        self.post_init()

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.cgdmer.ecg_embedding(input_values)  # (B, hidden_size), before normalisation


__all__ = ["CgdmerForECGClassification", "CgdmerModel", "CgdmerOutput", "CgdmerPreTrainedModel", "masked_mean", "mlm_loss", "orthogonality_loss",
           "reconstruction_loss", "reconstruction_targets"]

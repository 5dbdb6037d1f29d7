"""C-MELT: contrastive enhanced masked auto-encoder for ECG-report pre-training.

Pham, Saeed, Ma, "C-MELT: Contrastive Enhanced Masked Auto-Encoders for ECG-Language Pre-Training" (arXiv
2410.02131). The model's pieces, top-down (shapes for the default configuration, K = 78 kept of L = 312 tokens):

    input_values (B, 12, 5000), leads randomly zeroed by the collator
        └─ CmeltEcgEncoder: 4 convs (k=2, s=2) → 312 tokens → LN, 256→768, + conv positions
             → MEM masking (keep K) → [CLS] + 8 post-LN layers → (B, 1+K, 768) → ecg_projection
    report tokens (swapped for N3S negatives, then MLM-masked by the collator)
        └─ T5 encoder → (B, Lt, d_model) → text_projection → (B, Lt, 768)
    unimodal poolers (first token, or mean, → Linear → tanh): SigLIP ("Siglep", paper Eq. 4) and zero-shot
    CmeltFusion: + modality-type embeddings, 6 co-attention layers per stream (text ⇄ ECG)
        ├─ MLM head on the fused text stream (paper Eq. 1)
        ├─ MEM decoder on the fused ECG stream after `mem_layer` layers (paper Eq. 2): un-shuffle with a mask token,
        │   sine-cosine positions, 4 pre-LN blocks → (B, 312, 12·16) patches; MSE on the masked tokens
        └─ ETM head on the two multimodal pooled vectors (paper Eq. 3)
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from transformers import PreTrainedModel, T5EncoderModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_cmelt import CmeltConfig
from .ecg_classification import ECGClassificationMixin, classification_head, unused_keys_pattern, without_modules
from .ecg_layers import TransformerLayer, sinusoidal_position_embedding
from .ecg_losses import GatherFn, siglip_loss
from .ecg_masking import IGNORE_INDEX, TokenMask, keep_tokens, random_token_mask, unshuffle_tokens
from .ecg_model_inputs import check_finite, check_input_values, check_text_inputs
from .ecg_saving import NormalPermissionsMixin

# ----------------------------------------------------------------------------------------------------------------------
# ECG encoder


class CmeltConvFeatureEncoder(nn.Module):
    """Strided Conv1d layers, each followed by GELU, GroupNorm (one group per channel) after the first only
    (wav2vec 2.0's "default" feature extractor, C-MELT code). (B, 12, 5000) -> (B, 256, 312)."""

    def __init__(self, config: CmeltConfig):
        super().__init__()
        layers, in_channels = [], config.num_leads
        for index, (channels, kernel, stride) in enumerate(
            zip(config.ecg_conv_dim, config.ecg_conv_kernel, config.ecg_conv_stride)
        ):
            block = [nn.Conv1d(in_channels, channels, kernel, stride=stride, bias=config.ecg_conv_bias)]
            if index == 0:
                block.append(nn.GroupNorm(channels, channels))
            block.append(nn.GELU())
            layers.append(nn.Sequential(*block))
            in_channels = channels
        self.layers = nn.ModuleList(layers)

    def output_length(self, length: int) -> int:
        for layer in self.layers:
            conv = layer[0]
            length = (length - conv.kernel_size[0]) // conv.stride[0] + 1
        return length

    def forward(self, input_values):
        hidden = input_values
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


class CmeltConvPositionalEmbedding(nn.Module):
    """Relative positions from a wide grouped convolution over the tokens (wav2vec 2.0): weight-normalised Conv1d
    (kernel 128, 16 groups), the extra output step of the even kernel dropped, GELU."""

    def __init__(self, config: CmeltConfig):
        super().__init__()
        dim, kernel = config.ecg_hidden_size, config.ecg_conv_pos_kernel
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=config.ecg_conv_pos_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, tokens):
        hidden = self.conv(tokens.transpose(1, 2))  # (B, D, L + 1) for an even kernel
        if self.remove:
            hidden = hidden[:, :, : -self.remove]
        return F.gelu(hidden).transpose(1, 2)  # (B, L, D)


class CmeltEcgEncoder(nn.Module):
    """Conv feature encoder + transformer (paper §3.1): tokens of 16 samples x 12 leads, a learned [CLS] in front."""

    def __init__(self, config: CmeltConfig):
        super().__init__()
        dim = config.ecg_hidden_size
        self.feature_encoder = CmeltConvFeatureEncoder(config)
        self.feature_norm = nn.LayerNorm(config.ecg_conv_dim[-1], eps=config.ecg_layer_norm_eps)
        self.feature_projection = nn.Linear(config.ecg_conv_dim[-1], dim)
        self.feature_dropout = nn.Dropout(config.ecg_feature_dropout)
        self.position_embedding = CmeltConvPositionalEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # post-LN transformer: the input is normalised once, then each layer ends with its own LayerNorm (wav2vec 2.0)
        self.norm = nn.LayerNorm(dim, eps=config.ecg_layer_norm_eps)
        self.dropout = nn.Dropout(config.ecg_hidden_dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(
                dim, config.ecg_num_heads, config.ecg_intermediate_size, config.ecg_hidden_dropout,
                config.ecg_attention_dropout, config.ecg_activation_dropout, layer_norm_eps=config.ecg_layer_norm_eps,
            )
            for _ in range(config.ecg_num_layers)
        )

    def embed(self, input_values):
        """Conv features -> LayerNorm -> Linear -> + conv positions: (B, L, D), before any masking."""
        features = self.feature_encoder(input_values).transpose(1, 2)  # (B, L, 256)
        tokens = self.feature_dropout(self.feature_projection(self.feature_norm(features)))  # (B, L, D)
        return tokens + self.position_embedding(tokens)

    def forward(self, input_values=None, token_mask: TokenMask | None = None, tokens=None):
        """[CLS] + the (kept) tokens through the transformer: (B, 1 + K, D). `tokens`: the output of `embed`, reused
        when the same ECGs are encoded twice (masked and unmasked)."""
        tokens = self.embed(input_values) if tokens is None else tokens
        if token_mask is not None:
            tokens = keep_tokens(tokens, token_mask.keep_indices)  # (B, K, D): the encoder sees only kept tokens
        hidden = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)  # (B, 1 + K, D)
        hidden = self.dropout(self.norm(hidden))
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


# ----------------------------------------------------------------------------------------------------------------------
# Fusion and heads


class CmeltPooler(nn.Module):
    """First token -> Linear -> tanh (BERT's pooler; C-MELT code's poolers). With `mean=True` the tokens' mean over
    `mask` (B, L) replaces the first token (C-MELT paper: "a pooling layer, a Tanh activation function, and a dense
    layer")."""

    def __init__(self, dim: int, mean: bool = False):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.mean = mean

    def forward(self, tokens, mask=None):
        if not self.mean:
            return torch.tanh(self.dense(tokens[:, 0]))
        if mask is None:
            pooled = tokens.mean(dim=1)
        else:
            weights = mask.to(tokens.dtype)[:, :, None]  # (B, L, 1)
            pooled = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
        return torch.tanh(self.dense(pooled))


class CmeltFusion(nn.Module):
    """Modality-type embeddings (text 0, ECG 1), then co-attention layers: at every depth the text stream attends to
    the ECG stream and the ECG stream to the text stream, both from the previous depth's outputs (METER / M3AE)."""

    TEXT, ECG = 0, 1

    def __init__(self, config: CmeltConfig):
        super().__init__()
        dim = config.hidden_size

        def stream():
            return nn.ModuleList(
                TransformerLayer(
                    dim, config.fusion_num_heads, config.fusion_intermediate_size, config.fusion_hidden_dropout,
                    config.fusion_attention_dropout, cross_attention=True, layer_norm_eps=config.fusion_layer_norm_eps,
                )
                for _ in range(config.fusion_num_layers)
            )

        self.modality_embeddings = nn.Embedding(2, dim)
        self.text_layers = stream()
        self.ecg_layers = stream()

    def forward(self, text_tokens, text_mask, ecg_tokens, keep_ecg_after: int | None = None):
        """-> fused text (B, Lt, D), fused ECG (B, 1+K, D), and the ECG stream after `keep_ecg_after` layers."""
        text = text_tokens + self.modality_embeddings.weight[self.TEXT]
        ecg = ecg_tokens + self.modality_embeddings.weight[self.ECG]
        kept = ecg if keep_ecg_after == 0 else None
        for depth, (text_layer, ecg_layer) in enumerate(zip(self.text_layers, self.ecg_layers), start=1):
            text, ecg = text_layer(text, text_mask, ecg, None), ecg_layer(ecg, None, text, text_mask)
            if depth == keep_ecg_after:
                kept = ecg
        return text, ecg, kept


class CmeltMLMHead(nn.Module):
    """Dense + GELU + LayerNorm, then a vocabulary decoder with bias (BERT's LM head, not tied)."""

    def __init__(self, config: CmeltConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.fusion_layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.text_config.vocab_size)

    def forward(self, tokens):
        return self.decoder(self.norm(F.gelu(self.dense(tokens))))  # (B, Lt, V)


class CmeltMEMDecoder(nn.Module):
    """MAE-style decoder (paper §3.1): Linear to 384, a learned mask token for the hidden tokens, original order
    restored, fixed sine-cosine positions ([CLS] at a zero position), pre-LN blocks, LayerNorm, Linear to the
    12 x 16 samples of each token."""

    def __init__(self, config: CmeltConfig):
        super().__init__()
        dim = config.mem_decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.ModuleList(
            TransformerLayer(
                dim, config.mem_decoder_num_heads, dim * config.mem_decoder_mlp_ratio, norm_first=True,
                layer_norm_eps=config.mem_decoder_layer_norm_eps,
            )
            for _ in range(config.mem_decoder_num_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.mem_decoder_layer_norm_eps)
        self.predict = nn.Linear(dim, config.num_leads * config.patch_size)

    def forward(self, ecg_tokens, restore_indices):
        # ecg_tokens (B, 1 + K, D): [CLS] + kept tokens; restore_indices (B, L)
        hidden = self.embed(ecg_tokens)  # (B, 1 + K, d)
        tokens = unshuffle_tokens(hidden[:, 1:], self.mask_token, restore_indices)  # (B, L, d)
        hidden = torch.cat([hidden[:, :1], tokens], dim=1)  # (B, 1 + L, d)
        num_tokens, dim = tokens.shape[1], hidden.shape[-1]
        positions = sinusoidal_position_embedding(num_tokens, dim, device=hidden.device, dtype=hidden.dtype)
        hidden = hidden + torch.cat([positions.new_zeros(1, dim), positions])  # (1 + L, d) broadcast
        for layer in self.layers:
            hidden = layer(hidden)
        return self.predict(self.norm(hidden))[:, 1:]  # (B, L, 12 * 16)


def mem_targets(input_values: torch.Tensor, num_tokens: int, patch_size: int, normalize: bool, eps: float):
    """The MEM target: the model input cut to num_tokens * patch_size samples, each lead standardised over the whole
    record when `normalize` (C-MELT code; torch.var's unbiased estimate), as (B, L, leads * patch) patches."""
    signal = input_values[:, :, : num_tokens * patch_size]  # (B, 12, 4992)
    if normalize:
        mean = signal.mean(dim=-1, keepdim=True)
        var = signal.var(dim=-1, keepdim=True)
        signal = (signal - mean) / (var + eps).sqrt()
    batch, leads = signal.shape[:2]
    patches = signal.reshape(batch, leads, num_tokens, patch_size).permute(0, 2, 1, 3)  # (B, L, 12, 16)
    return patches.reshape(batch, num_tokens, leads * patch_size)  # (B, L, 192)


# ----------------------------------------------------------------------------------------------------------------------
# Model


@dataclass
class CmeltOutput(ModelOutput):
    """Outputs of [`CmeltModel`]. `ecg_embeds` / `text_embeds` are the unimodal pooled features as `get_*_features`
    return them (L2-normalised when `zero_shot_score="cosine"`); `logits_per_ecg` are the SigLIP logits."""

    loss: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    loss_mem: torch.FloatTensor | None = None
    loss_etm: torch.FloatTensor | None = None
    loss_siglip: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    etm_logits: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    mem_predictions: torch.FloatTensor | None = None
    mem_mask: torch.FloatTensor | None = None


class CmeltPreTrainedModel(NormalPermissionsMixin, PreTrainedModel):
    config: CmeltConfig
    base_model_prefix = "cmelt"
    main_input_name = "input_values"
    input_modalities = ("time", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerLayer", "T5Block"]
    _supports_sdpa = True  # the text encoder's attention (`attn_implementation="sdpa"`); the ECG layers are ours

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, nn.Conv1d) and not parametrize.is_parametrized(module):
            init.kaiming_normal_(module.weight)  # wav2vec 2.0's conv feature encoder
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, CmeltConvPositionalEmbedding):
            # weight norm w = g v / ||v||: draw v as wav2vec 2.0 draws w, g = ||v|| so that w = v at the start
            conv = module.conv
            weight = conv.parametrizations.weight
            std_pos = 2 * (1 / (conv.kernel_size[0] * conv.in_channels)) ** 0.5
            init.normal_(weight.original1, std=std_pos)
            init.copy_(weight.original0, torch.linalg.vector_norm(weight.original1, dim=(0, 1), keepdim=True))
            init.zeros_(conv.bias)
        elif isinstance(module, CmeltEcgEncoder):
            init.normal_(module.cls_token, std=std)
        elif isinstance(module, CmeltMEMDecoder):
            init.normal_(module.mask_token, std=std)
        elif isinstance(module, CmeltModel):
            init.constant_(module.siglip_logit_scale, self.config.siglip_logit_scale_init)
            if module.siglip_logit_bias is not None:
                init.constant_(module.siglip_logit_bias, self.config.siglip_logit_bias_init)


class CmeltModel(CmeltPreTrainedModel):
    r"""C-MELT with its four pre-training objectives and the zero-shot embeddings.

    What each objective sees (one forward pass, as the code; paper Fig. 1):

    - The collator zeroes random leads (`lead_mask_prob`), swaps about half of the reports for N3S negatives
      (`is_aligned` = 0), and MLM-masks the swapped-in text (the released code masks the original reports instead and
      so loses the swaps; here the swap comes first).
    - ECG: the encoder sees the `1 - mem_mask_ratio` kept tokens (MEM masking) whenever losses are computed with
      MEM on; `get_ecg_features` never masks.
    - SigLIP: the unimodal pooled features of this same masked pass (code: MEM-masked ECG, MLM-masked report); with
      `siglip_unmasked_inputs`, of a second pass of both encoders over the unmasked ECG (the conv features are
      shared) and the unmasked report, which is what zero-shot classification sees. Labels: +1 for (ECG i, text i)
      when aligned, -1 for every other pair, so swapped reports are negatives; with `report_ids` and
      `text_report_ids`, identical reports count as positives.
    - ETM: the fused pass; target `is_aligned`.
    - MLM: the fused text stream. With `mlm_aligned_only` (default) only aligned pairs are scored: MLM means
      "recover the masked words of *this* ECG's report with the ECG's help" (paper §3.1); on a swapped pair the ECG
      describes another report and the term would teach the text stream to ignore the ECG, against ETM.
    - MEM: the fused ECG stream after `mem_layer` layers; target the (lead-masked) input, per-lead standardised;
      MSE on the masked tokens only.

    Across processes (`gather`): SigLIP scores this process's ECGs against the texts of the global batch (exact: the
    mean over processes equals one process holding the whole batch); ETM is a per-pair mean, exact for equal
    per-process batches; MEM hides the same number of tokens in every record, so its per-process mean is exact too;
    MLM averages over this process's masked tokens ("mean", as DDP usually does), exact only with "sum".
    """

    def __init__(self, config: CmeltConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.ecg_encoder = CmeltEcgEncoder(config)
        self.text_model = T5EncoderModel(config.text_config)
        if config.freeze_text_encoder:
            self.text_model.requires_grad_(False)
        self.ecg_projection = nn.Linear(config.ecg_hidden_size, dim)
        self.text_projection = nn.Linear(config.text_config.d_model, dim)
        mean = config.unimodal_pooling == "mean"
        self.ecg_pooler = CmeltPooler(dim, mean)  # unimodal: SigLIP and zero-shot
        self.text_pooler = CmeltPooler(dim, mean)
        uses_fusion = config.use_mlm or config.use_mem or config.use_etm
        self.fusion = CmeltFusion(config) if uses_fusion else None
        self.mlm_head = CmeltMLMHead(config) if config.use_mlm else None
        self.mem_decoder = CmeltMEMDecoder(config) if config.use_mem else None
        if config.use_etm:
            self.fused_text_pooler = CmeltPooler(dim)
            self.fused_ecg_pooler = CmeltPooler(dim)
            self.etm_head = nn.Linear(2 * dim, 2 if config.etm_loss == "ce" else 1)
        else:
            self.fused_text_pooler = self.fused_ecg_pooler = self.etm_head = None
        learnable = config.siglip_learnable
        self.siglip_logit_scale = nn.Parameter(torch.tensor(config.siglip_logit_scale_init), requires_grad=learnable)
        self.siglip_logit_bias = None
        if config.siglip_logit_bias_init is not None:
            self.siglip_logit_bias = nn.Parameter(torch.tensor(config.siglip_logit_bias_init), requires_grad=learnable)
        self.post_init()

    # ------------------------------------------------------------------ geometry
    @property
    def num_ecg_tokens(self) -> int:
        return self.ecg_encoder.feature_encoder.output_length(self.config.num_samples)  # 312

    def train(self, mode: bool = True):
        """A frozen text encoder stays in eval mode (no dropout)."""
        super().train(mode)
        if self.config.freeze_text_encoder:
            self.text_model.eval()
        return self

    # ------------------------------------------------------------------ unimodal encoders
    def encode_ecg(self, input_values, token_mask: TokenMask | None = None, tokens=None) -> torch.Tensor:
        """Projected ECG tokens, [CLS] first: (B, 1 + kept, hidden_size). `tokens`: `ecg_encoder.embed` reused (the
        input was checked when they were made)."""
        if tokens is None:
            input_values = check_input_values(input_values, self.config.num_leads, self.config.num_samples, self.dtype)
        return self.ecg_projection(self.ecg_encoder(input_values, token_mask, tokens))

    def encode_text(self, input_ids, attention_mask=None) -> torch.Tensor:
        """Projected report tokens: (B, Lt, hidden_size)."""
        check_text_inputs(input_ids, attention_mask, self.config.text_config)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.text_projection(hidden)

    def _zero_shot_embeds(self, pooled):
        return F.normalize(pooled, dim=-1) if self.config.zero_shot_score == "cosine" else pooled

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        """Unmasked ECG → encoder → projection → unimodal pooler: (B, hidden_size), before any normalisation (what
        the fine-tuning head reads)."""
        return self._pool_ecg(self.encode_ecg(input_values))

    def get_ecg_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """`ecg_embedding`, L2-normalised unless `zero_shot_score="dot"`: (B, hidden_size)."""
        return self._zero_shot_embeds(self.ecg_embedding(input_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Report / prompt → T5 encoder (with its attention mask) → projection → unimodal pooler:
        (B, hidden_size), L2-normalised unless `zero_shot_score="dot"`."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self._zero_shot_embeds(self.text_pooler(self.encode_text(input_ids, attention_mask), attention_mask))

    def _pool_ecg(self, ecg_tokens):
        """[CLS] (code) or the mean of the patch tokens (`unimodal_pooling="mean"`): (B, D)."""
        return self.ecg_pooler(ecg_tokens[:, 1:] if self.config.unimodal_pooling == "mean" else ecg_tokens)

    # ------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        is_aligned: torch.Tensor | None = None,
        report_ids: torch.Tensor | None = None,
        text_report_ids: torch.Tensor | None = None,
        mem_noise: torch.Tensor | None = None,
        return_loss: bool | None = None,
        gather: GatherFn | None = None,
    ) -> CmeltOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(B, num_leads, num_samples)`): ECGs (lead-masked in training).
        input_ids, attention_mask (`(B, Lt)`): the report paired with each ECG (after N3S swaps), unmasked.
        mlm_input_ids (`(B, Lt)`, *optional*): the same reports MLM-masked; when given, the forward pass reads them
            instead of `input_ids` (one pass, as the code). mlm_labels (`(B, Lt)`): original ids at masked positions,
            -100 elsewhere.
        is_aligned (`(B,)` 0/1, *optional*): 0 where the report was swapped for a negative (default: all 1).
        report_ids, text_report_ids (`(B,)`, *optional*): the report each ECG belongs to and the report each row
            carries (equal ids = identical text); with both, SigLIP counts identical reports as positives.
        mem_noise (`(B, 312)`, *optional*): the noise whose lowest values choose the kept tokens (drawn on the
            model's device when omitted); a collator passes it to keep all randomness on its RNG.
        return_loss (`bool`, *optional*): compute the enabled loss terms (default: when the model is training).
        gather (*optional*): SigLIP against the global batch of all processes (`tamer_hf.distributed.gather_with_grad`).
        """
        cfg = self.config
        return_loss = self.training if return_loss is None else return_loss
        text_ids = mlm_input_ids if mlm_input_ids is not None else input_ids
        if return_loss and text_ids is None:
            raise ValueError("C-MELT's losses all need the reports: pass input_ids (and attention_mask).")
        input_values = check_input_values(input_values, cfg.num_leads, cfg.num_samples, self.dtype)
        if mem_noise is not None:
            check_finite("mem_noise", mem_noise)
        batch = input_values.shape[0]
        if is_aligned is None:
            is_aligned = torch.ones(batch, dtype=torch.long, device=input_values.device)

        token_mask = None
        if return_loss and cfg.use_mem:
            token_mask = random_token_mask(batch, self.num_ecg_tokens, cfg.mem_mask_ratio, noise=mem_noise,
                                           device=input_values.device)
        patches = self.ecg_encoder.embed(input_values)  # (B, L, De), shared by the masked and unmasked encodings
        ecg_tokens = self.encode_ecg(input_values, token_mask, patches)  # (B, 1 + K, D)
        ecg_pooled = self._pool_ecg(ecg_tokens)  # (B, D)
        if text_ids is None:
            return CmeltOutput(ecg_embeds=self._zero_shot_embeds(ecg_pooled))
        if attention_mask is None:
            attention_mask = torch.ones_like(text_ids)
        text_tokens = self.encode_text(text_ids, attention_mask)  # (B, Lt, D)
        text_pooled = self.text_pooler(text_tokens, attention_mask)  # (B, D)
        if cfg.siglip_unmasked_inputs:  # SigLIP on what zero-shot sees: every ECG token, the unmasked report
            if token_mask is not None:
                ecg_pooled = self._pool_ecg(self.encode_ecg(input_values, None, patches))
            if mlm_input_ids is not None and input_ids is not None:
                text_pooled = self.text_pooler(self.encode_text(input_ids, attention_mask), attention_mask)

        siglip_ecg, siglip_text = ecg_pooled, text_pooled
        if cfg.siglip_normalize:
            siglip_ecg, siglip_text = F.normalize(siglip_ecg, dim=-1), F.normalize(siglip_text, dim=-1)
        logit_scale = self.siglip_logit_scale.exp()
        logits_per_ecg = logit_scale * siglip_ecg @ siglip_text.T  # (B, B), this process's pairs
        if self.siglip_logit_bias is not None:
            logits_per_ecg = logits_per_ecg + self.siglip_logit_bias

        fused_text = fused_ecg = ecg_for_mem = None
        if self.fusion is not None:
            mem_layer = cfg.mem_layer if token_mask is not None else None
            fused_text, fused_ecg, ecg_for_mem = self.fusion(text_tokens, attention_mask, ecg_tokens, mem_layer)
        etm_logits = None
        if self.etm_head is not None:
            pooled = torch.cat([self.fused_text_pooler(fused_text), self.fused_ecg_pooler(fused_ecg)], dim=-1)
            etm_logits = self.etm_head(pooled)  # (B, 2) or (B, 1)
        mlm_logits = self.mlm_head(fused_text) if self.mlm_head is not None and mlm_labels is not None else None
        mem_predictions = None
        if token_mask is not None:
            mem_predictions = self.mem_decoder(ecg_for_mem, token_mask.restore_indices)  # (B, L, 192)

        losses = {}
        if return_loss:
            if cfg.use_siglip:
                losses["siglip"] = siglip_loss(
                    siglip_ecg, siglip_text, logit_scale, self.siglip_logit_bias, is_aligned=is_aligned,
                    ids_a=report_ids, ids_b=text_report_ids, reduction=cfg.siglip_reduction, gather=gather,
                )
            if cfg.use_etm:
                losses["etm"] = etm_loss(etm_logits, is_aligned, cfg.etm_loss)
            if cfg.use_mlm and mlm_logits is not None:
                labels = mlm_labels
                if cfg.mlm_aligned_only:
                    labels = labels.masked_fill(is_aligned[:, None] == 0, IGNORE_INDEX)
                losses["mlm"] = mlm_loss(mlm_logits, labels, cfg.mlm_reduction)
            if token_mask is not None:
                targets = mem_targets(input_values, self.num_ecg_tokens, cfg.patch_size, cfg.mem_norm_target,
                                      cfg.mem_norm_eps)
                losses["mem"] = mem_loss(mem_predictions, targets.to(mem_predictions.dtype), token_mask.mask,
                                         cfg.mem_reduction)
        total = None
        if losses:
            total = sum(getattr(cfg, f"{term}_weight") * value for term, value in losses.items())
        return CmeltOutput(
            loss=total,
            loss_mlm=losses.get("mlm"),
            loss_mem=losses.get("mem"),
            loss_etm=losses.get("etm"),
            loss_siglip=losses.get("siglip"),
            ecg_embeds=self._zero_shot_embeds(ecg_pooled),
            text_embeds=self._zero_shot_embeds(text_pooled),
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_ecg.T,
            etm_logits=etm_logits,
            mlm_logits=mlm_logits,
            mem_predictions=mem_predictions,
            mem_mask=token_mask.mask if token_mask is not None else None,
        )

    # ------------------------------------------------------------------ construction from a pretrained text encoder
    @classmethod
    def from_text_pretrained(cls, text_model_name_or_path: str, **config_kwargs) -> "CmeltModel":
        """A randomly initialised C-MELT whose text encoder starts from a pretrained T5 checkpoint (paper:
        `google/flan-t5-base`; only its encoder half is kept). Saved C-MELT checkpoints hold the encoder, so loading
        one later never fetches it again."""
        text_model = T5EncoderModel.from_pretrained(text_model_name_or_path)
        model = cls(CmeltConfig(text_config=text_model.config.to_dict(), **config_kwargs))
        model.text_model.load_state_dict(text_model.state_dict())
        return model



# ----------------------------------------------------------------------------------------------------------------------
# Losses


def etm_loss(logits: torch.Tensor, is_aligned: torch.Tensor, kind: str) -> torch.Tensor:
    """ECG-text matching: 2-way cross-entropy (code) or one logit with binary cross-entropy (paper Eq. 3)."""
    if kind == "ce":
        return F.cross_entropy(logits, is_aligned.long())
    return F.binary_cross_entropy_with_logits(logits[:, 0], is_aligned.to(logits.dtype))


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy over the labelled (masked) tokens: their mean (code) or their sum per report averaged over the
    batch (paper Eq. 1). 0 when no token is labelled."""
    total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    if reduction == "sum":
        return total / labels.shape[0]
    return total / (labels != IGNORE_INDEX).sum().clamp_min(1)


def mem_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Squared error on the masked tokens only (mask (B, L): 1 = masked): per-token mean, averaged over the masked
    tokens (code), or summed over each record's masked tokens and averaged over records (paper Eq. 2)."""
    squared = (predictions - targets) ** 2  # (B, L, P)
    if reduction == "sum":
        return (squared.sum(dim=-1) * mask).sum() / mask.shape[0]
    return (squared.mean(dim=-1) * mask).sum() / mask.sum().clamp_min(1)


# ----------------------------------------------------------------------------------------------------------------------
# Fine-tuning head

# what diagnosis never runs: the report side, the fusion module and the pre-training heads
CMELT_UNUSED_FOR_CLASSIFICATION = ("text_model", "text_projection", "text_pooler", "fusion", "mlm_head", "mem_decoder",
                                   "fused_text_pooler", "fused_ecg_pooler", "etm_head")


class CmeltForECGClassification(ECGClassificationMixin, CmeltPreTrainedModel):
    """C-MELT's ECG encoder, projection and unimodal pooler (`CmeltModel.ecg_embedding`, the feature of the paper's
    linear probe and fine-tuning) and the shared multi-label head (`ecg_classification.py`). The T5 encoder, the
    fusion module and the MLM / MEM / ETM heads are not built; the SigLIP scale and bias stay (two scalars).

    `CmeltForECGClassification.from_pretrained(pretrained_cmelt_folder, num_labels=C, id2label=...)` loads the
    pre-trained weights into `self.cmelt` and initialises `classifier`. Auto class: `AutoModelForAudioClassification`
    (why: `TamerForECGClassification`'s docstring).
    """

    input_modalities = ("time",)
    _keys_to_ignore_on_load_unexpected = [unused_keys_pattern(CMELT_UNUSED_FOR_CLASSIFICATION)]

    def __init__(self, config: CmeltConfig):
        super().__init__(config)
        self.cmelt = without_modules(CmeltModel(config), CMELT_UNUSED_FOR_CLASSIFICATION)
        self.classifier = classification_head(config, config.hidden_size)
        self.post_init()

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.cmelt.ecg_embedding(input_values)  # (B, hidden_size), before normalisation


__all__ = ["CmeltForECGClassification", "CmeltModel", "CmeltOutput", "CmeltPreTrainedModel", "etm_loss", "mem_loss", "mem_targets", "mlm_loss"]

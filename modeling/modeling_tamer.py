"""TAMER: tri-modal (ECG waveform, STFT spectrogram, clinical report) contrastive model.

Zhou et al., "TAMER", CVPR 2026. The model's pieces, top-down:

    input_values (B, 12, 5000) ──► stft_magnitude ──► spectrogram (B, 12, 63, 81)
          │                                               │
    ResNet-34-1D ──► ECG tokens l^t (B, 313, D)     2D CNN ──► spectrogram tokens l^f (B, 88, D)
          └───────── RLCA: L_CL(mean l^t, mean l^f) ─────┘
          └──── WLAI: 2 × self-attention over concat(l^t, l^f) → attention pool → z^e (B, D)
                      UECR: L_CL(dropout(z^e), dropout(z^e))
    frozen BERT report encoder ──► words l^r, global g^r, [CLS]-attention word weights w
                      RADA: L_CL(z^e, g^r)
                      RGWR: cross-attention ECG tokens ⇄ words, weighted token-level InfoNCE inside each sample

Shapes in comments use the default configuration (D = projection_dim = 256). Config switches remove pieces for the
paper's Table 4 ablations (`use_spectrogram`, `use_wlai`, `use_<term>`) and give MERL's model (ResNet-18, attention
pool, CLIP loss + uni-modal alignment): see `tamer_hf.presets`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple, logging

from .configuration_tamer import TamerConfig
from .ecg_classification import ECGClassificationMixin, classification_head, unused_keys_pattern, without_modules
from .ecg_layers import AttentionPool, ResidualBlock, ResNetEncoder, SelfAttentionBlock  # noqa: F401 (ResidualBlock: _no_split_modules)
from .ecg_losses import GatherFn, contrastive_loss
from .ecg_model_inputs import check_attention_mask, check_input_values, check_text_inputs
from .ecg_saving import NormalPermissionsMixin
from .ecg_signal import stft_frame_count, stft_magnitude

logger = logging.get_logger(__name__)

# ----------------------------------------------------------------------------------------------------------------------
# Fusion: WLAI


class WLAI(nn.Module):
    """WLAI: z1 = l + att(l), z2 = z1 + att(z1), z^e = attpool(z2) over l = concat(l^t, l^f) (paper Eq. for WLAI)."""

    def __init__(self, config: TamerConfig, num_tokens: int):
        super().__init__()
        dim = config.projection_dim
        self.layers = nn.ModuleList(
            SelfAttentionBlock(dim, config.wlai_num_heads, config.attention_dropout) for _ in range(config.wlai_num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.pool = AttentionPool(dim, num_tokens, config.pool_num_heads)

    def forward(self, ecg_tokens, spec_tokens=None):
        # without the spectrogram branch (Table 4 "time + report") l = l^t alone
        joint = ecg_tokens if spec_tokens is None else torch.cat([ecg_tokens, spec_tokens], dim=1)  # (B, 313 + 88, D)
        for layer in self.layers:
            joint = layer(joint)
        return self.pool(self.norm(joint))  # (B, D)


# ----------------------------------------------------------------------------------------------------------------------
# Losses


def token_contrastive_loss(anchors, contexts, weights, valid, temperature):
    """Weighted InfoNCE between tokens and their cross-attended contexts inside each sample.

    For sample i and token k: -log exp(sim(a_k, c_k)/λ) / Σ_{j valid} exp(sim(a_k, c_j)/λ), weighted by w_k
    (weights sum to 1 per sample) and averaged over the batch.
    anchors, contexts: (B, K, D); weights: (B, K); valid: (B, K) bool.
    """
    anchors = F.normalize(anchors, dim=-1)
    contexts = F.normalize(contexts, dim=-1)
    logits = anchors @ contexts.transpose(1, 2) / temperature  # (B, K, K)
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    log_probs = torch.diagonal(logits.log_softmax(dim=-1), dim1=1, dim2=2)  # (B, K)
    per_token = torch.where(valid, -log_probs, torch.zeros_like(log_probs))
    return (weights * per_token).sum(dim=1).mean()


class RGWR(nn.Module):
    """RGWR: bidirectional cross-attention (learned Q, K, V) between ECG tokens and report words, then a token-level
    InfoNCE inside each sample; words weighted by the report's [CLS] attention, ECG tokens uniformly (paper Eq. for
    L_RGWR = (L_ECG + L_report), each with the 1/2 factor)."""

    def __init__(self, config: TamerConfig):
        super().__init__()
        dim = config.projection_dim
        self.ecg_to_words = nn.MultiheadAttention(dim, config.rgwr_num_heads, batch_first=True)
        self.words_to_ecg = nn.MultiheadAttention(dim, config.rgwr_num_heads, batch_first=True)
        self.temperature = config.rgwr_temperature
        self.mean_over_words = config.rgwr_mean_over_words

    def forward(self, ecg_tokens, word_tokens, attention_mask, word_mask, word_weights):
        # ecg_tokens (B, K, D); word_tokens (B, M, D); attention_mask, word_mask, word_weights (B, M)
        ecg_context, _ = self.ecg_to_words(
            ecg_tokens, word_tokens, word_tokens, key_padding_mask=attention_mask == 0, need_weights=False
        )  # (B, K, D)
        word_context, _ = self.words_to_ecg(word_tokens, ecg_tokens, ecg_tokens, need_weights=False)  # (B, M, D)
        num_ecg_tokens = ecg_tokens.shape[1]
        ecg_valid = torch.ones(ecg_tokens.shape[:2], dtype=torch.bool, device=ecg_tokens.device)
        ecg_weights = torch.full(ecg_tokens.shape[:2], 1.0 / num_ecg_tokens, device=ecg_tokens.device)
        loss_ecg = token_contrastive_loss(ecg_tokens, ecg_context, ecg_weights, ecg_valid, self.temperature)
        if self.mean_over_words:  # Eq. 4 as printed: 1/(2NM) in front of the weighted sum over the M words
            word_weights = word_weights / word_mask.sum(dim=1, keepdim=True).clamp_min(1)
        loss_report = token_contrastive_loss(word_tokens, word_context, word_weights, word_mask, self.temperature)
        return (loss_ecg + loss_report) / 2


# ----------------------------------------------------------------------------------------------------------------------
# Model


@dataclass
class TamerOutput(ModelOutput):
    """Outputs of [`TamerModel`]. Embeddings are L2-normalised; logits are cosine / `rada_temperature`."""

    loss: torch.FloatTensor | None = None
    loss_rlca: torch.FloatTensor | None = None
    loss_uecr: torch.FloatTensor | None = None
    loss_rada: torch.FloatTensor | None = None
    loss_rgwr: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    word_weights: torch.FloatTensor | None = None


@dataclass
class TamerTextEncoding(ModelOutput):
    """What the frozen report encoder gives (cacheable per unique report: it never changes during training)."""

    last_hidden_state: torch.FloatTensor | None = None  # (B, L, H)
    pooled: torch.FloatTensor | None = None  # (B, H)
    word_weights: torch.FloatTensor | None = None  # (B, L), zero on [CLS], [SEP] and padding


class TamerPreTrainedModel(NormalPermissionsMixin, PreTrainedModel):
    config: TamerConfig
    base_model_prefix = "tamer"
    main_input_name = "input_values"
    input_modalities = ("time", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["ResidualBlock", "SelfAttentionBlock"]
    # `attn_implementation="sdpa"` is accepted, but the report encoder stays eager: the word weights read its [CLS]
    # attention maps, which SDPA does not return (TamerModel.__init__); TAMER's own attention blocks are unaffected
    _supports_sdpa = True

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, AttentionPool):
            init.normal_(module.class_token, std=std)
            init.normal_(module.position_embedding, std=std)
        elif isinstance(module, TamerModel):
            # non-persistent buffers come back as uninitialised memory from from_pretrained (transformers#48892)
            init.copy_(module.stft_window, torch.hann_window(self.config.stft_win_length, dtype=torch.float32))


class TamerModel(TamerPreTrainedModel):
    def __init__(self, config: TamerConfig):
        super().__init__(config)
        dim = config.projection_dim
        self.register_buffer("stft_window", torch.hann_window(config.stft_win_length), persistent=False)
        self.ecg_encoder = ResNetEncoder(
            1, config.num_leads, config.ecg_stem_channels, config.ecg_stem_kernel_size, 2,
            config.ecg_channels, config.ecg_blocks_per_stage,
        )
        self.spec_encoder = self.spec_token_projection = None
        if config.use_spectrogram:
            self.spec_encoder = ResNetEncoder(
                2, config.num_leads, config.spec_stem_channels, 3, 1, config.spec_channels, config.spec_blocks_per_stage
            )
        self.ecg_token_projection = nn.Linear(config.ecg_channels[-1], dim)  # MERL's 1x1 "downconv"
        if config.use_spectrogram:
            self.spec_token_projection = nn.Linear(config.spec_channels[-1], dim)
        # z^e: WLAI over both token sets, or (use_wlai=False) MERL's attention pool over the ECG tokens alone
        self.wlai = WLAI(config, num_tokens=self.num_ecg_tokens + self.num_spec_tokens) if config.use_wlai else None
        self.ecg_pool = None if config.use_wlai else AttentionPool(dim, self.num_ecg_tokens, config.pool_num_heads)
        self.pool_projection = nn.Linear(dim, dim) if config.pool_output_projection else None  # MERL's c_proj
        self.uecr_heads = None
        if config.use_uecr and config.uecr_projection_heads:  # MERL's linear1 / linear2
            self.uecr_heads = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(2))

        # A frozen BERT held inside the checkpoint; eager attention because the word weights need attention maps.
        config.text_config._attn_implementation = "eager"
        self.text_model = BertModel(config.text_config, add_pooling_layer=config.text_pooling == "pooler")
        # frozen and in eval mode (no dropout) from the start, not only after `train()`: features computed right after
        # construction (the pre-training text-feature cache) must be those inference computes
        self.text_model.requires_grad_(False).eval()
        text_width = config.text_config.hidden_size
        self.text_projection = nn.Sequential(nn.Linear(text_width, dim), nn.GELU(), nn.Linear(dim, dim))  # MERL proj_t
        # only RADA trains the report projection; frozen without it, so DDP does not wait for its gradient
        self.text_projection.requires_grad_(config.use_rada)
        self.word_projection = nn.Linear(text_width, dim) if config.use_rgwr else None
        self.rgwr = RGWR(config) if config.use_rgwr else None
        self.post_init()

    # ------------------------------------------------------------------ geometry
    @property
    def num_ecg_tokens(self) -> int:
        return self.ecg_encoder.output_length(self.config.num_samples)  # 313

    @property
    def spectrogram_shape(self) -> tuple[int, int]:
        cfg = self.config
        return cfg.stft_n_fft // 2 + 1, stft_frame_count(cfg.num_samples, cfg.stft_win_length, cfg.stft_hop_length)

    @property
    def num_spec_tokens(self) -> int:
        if self.spec_encoder is None:
            return 0
        bins, frames = self.spectrogram_shape  # (63, 81)
        return self.spec_encoder.output_length(bins) * self.spec_encoder.output_length(frames)  # 8 * 11 = 88

    def train(self, mode: bool = True):
        """The report encoder stays in eval mode (no dropout): it is frozen (paper)."""
        super().train(mode)
        self.text_model.eval()
        return self

    # ------------------------------------------------------------------ ECG side
    def spectrogram(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, 12, 5000) -> (B, 12, 63, 81) STFT magnitude, computed on the input's device."""
        cfg = self.config
        return stft_magnitude(input_values, self.stft_window, cfg.stft_n_fft, cfg.stft_hop_length, cfg.spectrogram_log)

    def encode_ecg(self, input_values):
        """Local tokens and global features of both ECG branches: (B, 313, D), (B, 88, D), (B, D), (B, D); the
        spectrogram's two are None without the spectrogram branch."""
        input_values = check_input_values(input_values, self.config.num_leads, self.config.num_samples, self.dtype)
        ecg_maps = self.ecg_encoder(input_values)  # (B, 512, 313)
        ecg_tokens = self.ecg_token_projection(ecg_maps.transpose(1, 2))  # (B, 313, D)
        if self.spec_encoder is None:
            return ecg_tokens, None, ecg_tokens.mean(dim=1), None
        spectrogram = self.spectrogram(input_values).to(ecg_maps.dtype)  # (B, 12, 63, 81)
        spec_maps = self.spec_encoder(spectrogram)  # (B, 384, 8, 11)
        spec_tokens = self.spec_token_projection(spec_maps.flatten(2).transpose(1, 2))  # (B, 88, D)
        return ecg_tokens, spec_tokens, ecg_tokens.mean(dim=1), spec_tokens.mean(dim=1)

    def pool_ecg_tokens(self, ecg_tokens, spec_tokens=None):
        """z^e (B, D), before L2 normalisation: WLAI over both token sets, or (`use_wlai=False`) the attention pool
        over the ECG tokens alone; then MERL's output projection when `pool_output_projection`."""
        pooled = self.ecg_pool(ecg_tokens) if self.wlai is None else self.wlai(ecg_tokens, spec_tokens)  # (B, D)
        return pooled if self.pool_projection is None else self.pool_projection(pooled)

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        """z^e before L2 normalisation, (B, projection_dim): what a classification head reads."""
        ecg_tokens, spec_tokens, _, _ = self.encode_ecg(input_values)
        return self.pool_ecg_tokens(ecg_tokens, spec_tokens)

    def get_ecg_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """The zero-shot ECG embedding z^e, L2-normalised: (B, projection_dim)."""
        return F.normalize(self.ecg_embedding(input_values), dim=-1)

    # ------------------------------------------------------------------ report side
    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TamerTextEncoding:
        """Run the frozen report encoder: word features, global feature and [CLS]→word attention weights."""
        check_text_inputs(input_ids, attention_mask, self.config.text_config)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        hidden = outputs.last_hidden_state  # (B, L, H)
        pooled = outputs.pooler_output if self.config.text_pooling == "pooler" else hidden[:, 0]
        cls_attention = outputs.attentions[-1][:, :, 0, :].mean(dim=1)  # (B, L), averaged over heads
        word_mask = word_mask_from(attention_mask)
        word_weights = cls_attention * word_mask
        if self.config.rgwr_clip_word_weights is not None:
            word_weights = clip_word_weights(word_weights, word_mask.bool(), *self.config.rgwr_clip_word_weights)
        word_weights = word_weights / word_weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(hidden.dtype).tiny)
        return TamerTextEncoding(last_hidden_state=hidden, pooled=pooled, word_weights=word_weights)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The projected report / prompt embedding g^r, L2-normalised: (B, projection_dim)."""
        encoding = self.encode_text(input_ids, attention_mask)
        return F.normalize(self.text_projection(encoding.pooled), dim=-1)

    # ------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_encoding: TamerTextEncoding | None = None,
        return_loss: bool | None = None,
        gather: GatherFn | None = None,
        report_ids: torch.LongTensor | None = None,
    ) -> TamerOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(B, num_leads, num_samples)`): normalised ECGs.
        input_ids, attention_mask: the tokenised reports (or prompts).
        text_encoding ([`TamerTextEncoding`], *optional*): cached output of `encode_text` used instead of `input_ids`.
        return_loss (`bool`, *optional*): compute the enabled loss terms (default: when the model is training).
        gather (*optional*): makes RLCA, UECR and RADA contrast against the global batch of all processes (see
            `tamer_hf.distributed.gather_with_grad`); RGWR is inside each sample and needs no gathering.
        report_ids (`torch.LongTensor` of shape `(B,)`, *optional*): equal ids mark identical reports; RADA then does
            not treat such pairs as negatives (duplicate reports in a batch are false negatives).
        """
        cfg = self.config
        return_loss = self.training if return_loss is None else return_loss
        ecg_tokens, spec_tokens, ecg_global, spec_global = self.encode_ecg(input_values)
        ecg_embeds = self.pool_ecg_tokens(ecg_tokens, spec_tokens)  # z^e (B, D)

        has_text = input_ids is not None or text_encoding is not None
        text_embeds = logits_per_ecg = logits_per_text = None
        if has_text:
            if text_encoding is None:
                text_encoding = self.encode_text(input_ids, attention_mask)
            elif attention_mask is not None:
                check_attention_mask(attention_mask)
            if attention_mask is None:
                attention_mask = torch.ones(text_encoding.last_hidden_state.shape[:2], device=ecg_embeds.device)
            text_embeds = F.normalize(self.text_projection(text_encoding.pooled.to(ecg_embeds.dtype)), dim=-1)
            logits_per_ecg = F.normalize(ecg_embeds, dim=-1) @ text_embeds.T / cfg.rada_temperature
            logits_per_text = logits_per_ecg.T

        losses = {}
        if return_loss:
            if cfg.use_rlca:
                losses["rlca"] = self.contrastive(ecg_global, spec_global, cfg.rlca_temperature, gather)
            if cfg.use_uecr:
                view_u, view_v = self.uecr_views(ecg_global if cfg.uecr_input == "token_mean" else ecg_embeds)
                losses["uecr"] = self.contrastive(view_u, view_v, cfg.uecr_temperature, gather)
            if has_text and cfg.use_rada:
                losses["rada"] = self.contrastive(ecg_embeds, text_embeds, cfg.rada_temperature, gather, report_ids)
            if has_text and cfg.use_rgwr:
                word_tokens = self.word_projection(text_encoding.last_hidden_state.to(ecg_tokens.dtype))  # (B, L, D)
                word_mask = word_mask_from(attention_mask).bool()
                losses["rgwr"] = self.rgwr(
                    ecg_tokens, word_tokens, attention_mask, word_mask, text_encoding.word_weights.to(ecg_tokens.dtype)
                )
        return TamerOutput(
            loss=sum(losses.values()) if losses else None,
            loss_rlca=losses.get("rlca"),
            loss_uecr=losses.get("uecr"),
            loss_rada=losses.get("rada"),
            loss_rgwr=losses.get("rgwr"),
            ecg_embeds=F.normalize(ecg_embeds, dim=-1),
            text_embeds=text_embeds,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_text,
            word_weights=text_encoding.word_weights if has_text else None,
        )

    # ------------------------------------------------------------------ loss pieces
    def contrastive(self, embeds_a, embeds_b, temperature, gather=None, sample_ids=None):
        """L_CL in the configured form: with or without the positive in the denominator
        (`exclude_positive_from_denominator`), the two directions averaged or summed (`contrastive_reduction`)."""
        cfg = self.config
        loss = contrastive_loss(embeds_a, embeds_b, temperature, cfg.exclude_positive_from_denominator, gather,
                                sample_ids=sample_ids)
        return 2 * loss if cfg.contrastive_reduction == "sum" else loss  # MERL clip_loss: i2t + t2i

    def uecr_views(self, embeds):
        """UECR's two stochastic views z^u, z^v (B, D): dropout samples of `embeds` (paper §3.2.3), each after its
        own bias-free Linear with `uecr_projection_heads` (MERL's uni-modal alignment)."""
        views = (embeds, embeds) if self.uecr_heads is None else (head(embeds) for head in self.uecr_heads)
        return [F.dropout(view, self.config.uecr_dropout, self.training) for view in views]

    # ------------------------------------------------------------------ construction from a pretrained text encoder
    @classmethod
    def from_text_pretrained(cls, text_model_name_or_path: str, **config_kwargs) -> "TamerModel":
        """A randomly initialised TAMER whose frozen report encoder is a pretrained BERT-family checkpoint
        (default in the paper: `ncbi/MedCPT-Query-Encoder`). The encoder is stored inside every saved TAMER
        checkpoint, so loading one later never fetches it again.

        With `text_pooling="pooler"` the checkpoint's pooler (dense + tanh on [CLS], MERL's `pooler_output`) is
        loaded too; a checkpoint without pooler weights gets a random one, with a warning (it is then stored in this
        model's checkpoints, so it stays the same from then on). The loaded weights are logged.
        """
        with_pooler = TamerConfig(**config_kwargs).text_pooling == "pooler"
        text_model, loading = BertModel.from_pretrained(
            text_model_name_or_path, add_pooling_layer=with_pooler, output_loading_info=True
        )
        missing = sorted(loading["missing_keys"])
        if [key for key in missing if not key.startswith("pooler.")]:
            raise ValueError(f"{text_model_name_or_path} does not fit a BERT encoder: no weights for {missing}.")
        config = TamerConfig(text_config=text_model.config.to_dict(), **config_kwargs)
        model = cls(config)
        model.text_model.load_state_dict(text_model.state_dict())  # the same architecture: strict
        loaded = [key for key in text_model.state_dict() if key not in missing]
        parts = sorted({key.split(".")[0] for key in loaded})  # embeddings, encoder, pooler
        logger.info(f"Report encoder from {text_model_name_or_path}: loaded {len(loaded)} tensors ({', '.join(parts)}; "
                    f"{config.text_config.num_hidden_layers} layers); text_pooling={config.text_pooling!r}.")
        if loading["unexpected_keys"]:
            logger.info(f"Not used from {text_model_name_or_path}: {sorted(loading['unexpected_keys'])}.")
        if missing:
            logger.warning(f"{text_model_name_or_path} has no weights for {missing}: they are randomly initialised "
                           "(and saved with this model from now on).")
        return model


def clip_word_weights(weights: torch.Tensor, word_mask: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """MGCA's word weights: each report's weights clipped to its `low`-`high` quantiles over its words (torch.quantile,
    linear interpolation). weights (B, L), word_mask (B, L) bool; positions outside the mask are left as they are."""
    over_words = weights.masked_fill(~word_mask, float("nan"))  # (B, L)
    lower = torch.nanquantile(over_words, low, dim=1, keepdim=True)  # (B, 1); NaN for a report without words
    upper = torch.nanquantile(over_words, high, dim=1, keepdim=True)
    return torch.where(word_mask, torch.minimum(torch.maximum(weights, lower), upper), weights)


def word_mask_from(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that hold report words: attended tokens minus [CLS] (first) and [SEP] (last attended)."""
    mask = attention_mask.clone()
    mask[:, 0] = 0
    last = attention_mask.sum(dim=1).long() - 1  # (B,)
    mask[torch.arange(mask.shape[0], device=mask.device), last.clamp_min(0)] = 0
    return mask


# ----------------------------------------------------------------------------------------------------------------------
# Fine-tuning head (the shared head, forward, loss and output are in ecg_classification.py)


# the report side and the UECR heads: pre-training only
TAMER_UNUSED_FOR_CLASSIFICATION = ("text_model", "text_projection", "word_projection", "rgwr", "uecr_heads")


class TamerForECGClassification(ECGClassificationMixin, TamerPreTrainedModel):
    """TAMER's ECG side (waveform and spectrogram encoders, WLAI) and a linear head over z^e, trained on multi-hot
    diagnoses with binary cross-entropy: full fine-tuning, or linear probing after `freeze_base_model()`.

    `TamerForECGClassification.from_pretrained(pretrained_tamer_folder, num_labels=C, id2label=...)` loads the
    pre-trained weights into `self.tamer` (a TamerModel checkpoint has no `tamer.` prefix; transformers adds
    `base_model_prefix`) and initialises `classifier`.

    The head reads z^e before its L2 normalisation (`TamerModel.ecg_embedding`; with `use_wlai=False` the attention
    pool's output), standardised by `ECGClassificationHead`.

    The report side and the UECR heads are dropped: diagnosis never reads a report, and the frozen BERT is 110 M of the
    paper model's 122 M parameters. A fine-tuned checkpoint therefore holds only the ECG side and the head; its config
    keeps `text_config`, so the architecture stays described in full.

    Auto class: `AutoModelForAudioClassification`. transformers 5 has no public Auto class for time-series
    classification (`MODEL_FOR_TIME_SERIES_CLASSIFICATION_MAPPING` has no Auto class of its own), and the audio one
    has this head's contract: a sampled signal through a feature extractor into `input_values`, `labels` in and
    `logits` (B, num_labels) out, `num_labels`/`id2label` in the config. (The "audio-classification" pipeline itself
    takes one-channel audio, not 12 leads.) `AutoModelForSequenceClassification` would suggest text input.
    """

    input_modalities = ("time",)
    _keys_to_ignore_on_load_unexpected = [unused_keys_pattern(TAMER_UNUSED_FOR_CLASSIFICATION)]

    def __init__(self, config: TamerConfig):
        super().__init__(config)
        self.tamer = without_modules(TamerModel(config), TAMER_UNUSED_FOR_CLASSIFICATION)
        self.classifier = classification_head(config, config.projection_dim)
        self.post_init()

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.tamer.ecg_embedding(input_values)  # z^e before L2 normalisation: (B, D)


__all__ = ["TamerModel", "TamerPreTrainedModel", "TamerOutput", "TamerTextEncoding", "contrastive_loss", "stft_magnitude",
           "TamerForECGClassification"]

"""C-MELT configuration: the single source of every hyper-parameter of the model.

Pham, Saeed, Ma, "C-MELT: Contrastive Enhanced Masked Auto-Encoders for ECG-Language Pre-Training" (arXiv
2410.02131). Sources in the comments: [paper] the paper (section or equation), [code] the authors' released code
(D-BETA repository, models/ and configs/), [SigLIP] Zhai et al. 2023, [ours] a choice of this implementation where
neither says. Where paper and code differ, both are options and the default is the code's unless stated.
"""

from transformers import PreTrainedConfig, T5Config

from .configuration_ecg import ECGConfigChecksMixin
from .ecg_signal import CANONICAL_LEADS
from .pipeline_zero_shot_ecg import ZeroShotPipelineConfigMixin

LOSS_TERMS = ("mlm", "mem", "etm", "siglip")

# google/flan-t5-base, the paper's text encoder [paper §3.1] (its encoder half: 12 layers, 768 wide, gated GELU).
FLAN_T5_BASE = dict(
    vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
    layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
    pad_token_id=0, eos_token_id=1,
)
ETM_LOSSES = ("ce", "bce")
REDUCTIONS = ("mean", "sum")
ZERO_SHOT_SCORES = ("cosine", "dot")
POOLINGS = ("first", "mean")


class CmeltConfig(ECGConfigChecksMixin, ZeroShotPipelineConfigMixin, PreTrainedConfig):
    r"""Configuration of [`CmeltModel`].

    Data layout:
        num_leads, sampling_rate, num_samples, lead_names: (B, 12, 5000), 10 s at 500 Hz in the order I, II, III,
            aVR, aVL, aVF, V1-V6 [paper §4.1: MIMIC-IV-ECG at 500 Hz].

    ECG encoder [code; paper §3.1 gives conv + GELU + group norm, 768-d, 8 transformer layers]:
        ecg_conv_dim, ecg_conv_kernel, ecg_conv_stride (`list[int]`): the convolutional feature extractor, four
            Conv1d (256 channels, kernel 2, stride 2, no bias) each followed by GELU, GroupNorm after the first only
            (wav2vec 2.0's "default" extractor). 5000 samples -> 312 tokens of 16 samples x 12 leads.
        ecg_conv_bias (`bool`, defaults to `False`).
        ecg_hidden_size, ecg_num_layers, ecg_num_heads, ecg_intermediate_size: 768, 8, 12, 3072; post-LN layers.
        ecg_conv_pos_kernel, ecg_conv_pos_groups: the convolutional positional embedding (kernel 128, 16 groups,
            weight norm, GELU), added to the tokens before masking and before the CLS token is prepended.
        ecg_hidden_dropout, ecg_attention_dropout, ecg_activation_dropout, ecg_feature_dropout: 0.1, 0.1, 0.0, 0.1.
        ecg_layer_norm_eps (`float`, defaults to 1e-5).

    Text encoder:
        text_config (`dict` or `T5Config`): the encoder half of a T5 (`T5EncoderModel`); default flan-t5-base's shape.
        freeze_text_encoder (`bool`, defaults to `False`): the code trains the T5 encoder (the paper does not say).

    Fusion [code; paper §3.1 "cross-attention", number of layers from the code]:
        hidden_size (`int`, defaults to 768): width of the projections, fusion, poolers and heads.
        fusion_num_layers, fusion_num_heads, fusion_intermediate_size: 6 co-attention layers per stream (self-attention
            -> cross-attention -> MLP, post-LN, METER/M3AE's BertCrossLayer), 12 heads, 3072.
        fusion_hidden_dropout, fusion_attention_dropout (0.1, BERT's), fusion_layer_norm_eps (1e-12, BERT's).

    Poolers:
        unimodal_pooling (`"first"` [code: the ECG [CLS] token, the report's first T5 token] or `"mean"` [a reading of
            paper §3.2's "pooling layer": the mean of the ECG patch tokens / of the report's tokens]): what the
            unimodal poolers (SigLIP and zero-shot) read before their Linear + tanh. The ETM poolers read first tokens.

    Heads and losses:
        use_mlm, use_mem, use_etm, use_siglip (`bool`): switch each loss term; mlm_weight, mem_weight, etm_weight,
            siglip_weight (`float`, defaults to 1.0 [code loss.py]) weight them in `loss`.
        mlm_probability (`float`, defaults to 0.25 [code]): read by the data collator (80/10/10 corruption).
        mlm_aligned_only (`bool`, defaults to `True` [ours]): MLM labels of reports swapped in as negatives are ignored;
            see `CmeltModel` for why. `False` also reconstructs the swapped reports.
        mlm_reduction (`"mean"` [code: mean over masked tokens] or `"sum"` [paper Eq. 1: sum over masked tokens / B]).
        lead_mask_prob (`float`, defaults to 0.5 [code, Oh et al. 2022]): read by the data collator; each lead is zeroed
            with this probability (training augmentation, before everything else).
        mem_mask_ratio (`float`, defaults to 0.75 [code]): ECG tokens hidden from the encoder when MEM is on (78 of 312
            kept).
        mem_layer (`int`, defaults to 3 [code]): the MEM decoder reads the fused ECG stream after this many fusion
            layers (0 = the projected ECG encoder output).
        mem_decoder_hidden_size, mem_decoder_num_layers, mem_decoder_num_heads, mem_decoder_mlp_ratio: 384, 4, 6, 4
            [code; paper §3.1 gives 384]; pre-LN blocks, mem_decoder_layer_norm_eps 1e-6 (MAE's).
        mem_norm_target (`bool`, defaults to `True` [code's get_targets default]): standardise each lead of the target
            over the whole record (not per patch), with mem_norm_eps 1e-6 (MAE's).
        mem_reduction (`"mean"` [code: MSE per token, mean over masked tokens] or `"sum"` [paper Eq. 2: squared error
            summed over the masked tokens of a record, mean over records]).
        etm_loss (`"ce"` [code: 2 logits, cross-entropy] or `"bce"` [paper Eq. 3: 1 logit, binary cross-entropy]).
        siglip_normalize (`bool`, defaults to `False` [code]; SigLIP L2-normalises the features).
        siglip_logit_scale_init (`float`, defaults to 0.0 = log 1 [code: scale 1]; SigLIP: log 10), stored as a log.
        siglip_logit_bias_init (`float` or `None`, defaults to `None` [code: no bias]; SigLIP: -10).
        siglip_learnable (`bool`, defaults to `False` [code]; SigLIP learns scale and bias).
        siglip_reduction (`"mean"` [code: mean over B x B] or `"sum"` [paper Eq. 4: sum / B]).
        siglip_unmasked_inputs (`bool`, defaults to `False` [code: SigLIP reads the one masked pass]): `True` gives
            SigLIP a second pass of both encoders over the unmasked ECG and report [ours; the paper does not say what
            SigLIP's heads see], the inputs of zero-shot classification.

    Zero-shot:
        zero_shot_score (`"cosine"` [ours, default] or `"dot"` [code's notebook: raw dot product of the unimodal
            pooled features]): what `get_ecg_features` / `get_text_features` return, L2-normalised or not; the shared
            pipeline scores `ecg @ text.T` either way.
        label_temperature (`float`, defaults to 0.1 [ours]): the pipeline's softmax temperature over candidate labels
            (C-MELT ranks by score only; 0.1 = 1 / SigLIP's initial scale of 10).
    """

    model_type = "cmelt"
    sub_configs_defaults = {"text_config": T5Config}

    # data layout
    num_leads: int = 12
    sampling_rate: int = 500  # [paper §4.1]
    num_samples: int = 5000  # 10 s [paper §4.1]
    lead_names: list[str] | None = None  # None -> CANONICAL_LEADS
    # ECG encoder [code configs/config.json]
    ecg_conv_dim: list[int] | None = None  # None -> [256] * 4
    ecg_conv_kernel: list[int] | None = None  # None -> [2] * 4
    ecg_conv_stride: list[int] | None = None  # None -> [2] * 4
    ecg_conv_bias: bool = False
    ecg_hidden_size: int = 768  # [paper §3.1, code]
    ecg_num_layers: int = 8  # [paper §3.1, code]
    ecg_num_heads: int = 12
    ecg_intermediate_size: int = 3072
    ecg_conv_pos_kernel: int = 128
    ecg_conv_pos_groups: int = 16
    ecg_hidden_dropout: float = 0.1
    ecg_attention_dropout: float = 0.1
    ecg_activation_dropout: float = 0.0
    ecg_feature_dropout: float = 0.1  # after the 256 -> 768 feature projection
    ecg_layer_norm_eps: float = 1e-5
    # text encoder
    text_config: dict | T5Config | None = None  # None -> FLAN_T5_BASE
    freeze_text_encoder: bool = False  # [code: trained]
    # fusion [code models/dbeta.py, cross_layer.py]
    hidden_size: int = 768
    fusion_num_layers: int = 6
    fusion_num_heads: int = 12
    fusion_intermediate_size: int = 3072
    fusion_hidden_dropout: float = 0.1
    fusion_attention_dropout: float = 0.1
    fusion_layer_norm_eps: float = 1e-12
    unimodal_pooling: str = "first"  # [code]; "mean": [paper §3.2, one reading]
    # loss terms [code losses/loss.py: all weights 1]
    use_mlm: bool = True
    use_mem: bool = True
    use_etm: bool = True
    use_siglip: bool = True
    mlm_weight: float = 1.0
    mem_weight: float = 1.0
    etm_weight: float = 1.0
    siglip_weight: float = 1.0
    # MLM
    mlm_probability: float = 0.25  # [code]
    mlm_aligned_only: bool = True  # [ours]
    mlm_reduction: str = "mean"  # [code]; "sum": [paper Eq. 1]
    # ECG masking and MEM
    lead_mask_prob: float = 0.5  # [code utils/augmentations.py RandomLeadsMask]
    mem_mask_ratio: float = 0.75  # [code mem_prob]
    mem_layer: int = 3  # [code]
    mem_decoder_hidden_size: int = 384  # [paper §3.1, code]
    mem_decoder_num_layers: int = 4  # [code]
    mem_decoder_num_heads: int = 6  # [code]
    mem_decoder_mlp_ratio: int = 4  # [code]
    mem_decoder_layer_norm_eps: float = 1e-6  # MAE
    mem_norm_target: bool = True  # [code get_targets]
    mem_norm_eps: float = 1e-6  # MAE
    mem_reduction: str = "mean"  # [code]; "sum": [paper Eq. 2]
    # ETM
    etm_loss: str = "ce"  # [code]; "bce": [paper Eq. 3]
    # SigLIP ("Siglep") [code losses/ets.py; paper Eq. 4]
    siglip_normalize: bool = False  # [code]; SigLIP: True
    siglip_logit_scale_init: float = 0.0  # log(1) [code]; SigLIP: log(10)
    siglip_logit_bias_init: float | None = None  # [code: none]; SigLIP: -10
    siglip_learnable: bool = False  # [code]; SigLIP: True
    siglip_reduction: str = "mean"  # [code HEAD]; "sum": [paper Eq. 4, code before 12abb7f]
    siglip_unmasked_inputs: bool = False  # [code]
    # zero-shot
    zero_shot_score: str = "cosine"  # [ours]; "dot": [code example.ipynb]
    label_temperature: float = 0.1  # [ours]
    initializer_range: float = 0.02  # BERT's

    def __post_init__(self, **kwargs):
        if self.lead_names is None:
            self.lead_names = list(CANONICAL_LEADS)
        if self.ecg_conv_dim is None:
            self.ecg_conv_dim = [256] * 4
        if self.ecg_conv_kernel is None:
            self.ecg_conv_kernel = [2] * 4
        if self.ecg_conv_stride is None:
            self.ecg_conv_stride = [2] * 4
        if self.text_config is None:
            self.text_config = dict(FLAN_T5_BASE)
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Called by `@strict` validation and before `save_pretrained`."""
        if len(self.lead_names) != self.num_leads:
            raise ValueError(f"lead_names has {len(self.lead_names)} names but num_leads is {self.num_leads}.")
        if not len(self.ecg_conv_dim) == len(self.ecg_conv_kernel) == len(self.ecg_conv_stride) > 0:
            raise ValueError("ecg_conv_dim, ecg_conv_kernel and ecg_conv_stride need one entry per conv layer each.")
        if self.ecg_conv_kernel != self.ecg_conv_stride:
            # each token must cover exactly prod(strides) samples, the patch that MEM reconstructs
            raise ValueError("ecg_conv_kernel must equal ecg_conv_stride (non-overlapping patches for MEM).")
        for width, heads, name in [(self.ecg_hidden_size, self.ecg_num_heads, "ecg"),
                                   (self.hidden_size, self.fusion_num_heads, "fusion"),
                                   (self.mem_decoder_hidden_size, self.mem_decoder_num_heads, "mem_decoder")]:
            if width % heads != 0:
                raise ValueError(f"the {name} width ({width}) must be divisible by its number of heads ({heads}).")
        if self.ecg_hidden_size % self.ecg_conv_pos_groups != 0:
            raise ValueError("ecg_hidden_size must be divisible by ecg_conv_pos_groups.")
        if self.mem_decoder_hidden_size % 2 != 0:
            raise ValueError("mem_decoder_hidden_size must be even (sine-cosine positions).")
        if not 0 <= self.mem_layer <= self.fusion_num_layers:
            raise ValueError(
                f"mem_layer must lie in [0, fusion_num_layers={self.fusion_num_layers}], got {self.mem_layer}."
            )
        if not 0 <= self.mem_mask_ratio < 1:
            raise ValueError(f"mem_mask_ratio must lie in [0, 1), got {self.mem_mask_ratio}.")
        for name in ("mlm_probability", "lead_mask_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}.")
        for name in ("mlm_reduction", "mem_reduction", "siglip_reduction"):
            if getattr(self, name) not in REDUCTIONS:
                raise ValueError(f"{name} must be one of {REDUCTIONS}, got {getattr(self, name)!r}.")
        if self.etm_loss not in ETM_LOSSES:
            raise ValueError(f"etm_loss must be one of {ETM_LOSSES}, got {self.etm_loss!r}.")
        if self.unimodal_pooling not in POOLINGS:
            raise ValueError(f"unimodal_pooling must be one of {POOLINGS}, got {self.unimodal_pooling!r}.")
        if self.zero_shot_score not in ZERO_SHOT_SCORES:
            raise ValueError(f"zero_shot_score must be one of {ZERO_SHOT_SCORES}, got {self.zero_shot_score!r}.")
        if self.label_temperature <= 0:
            raise ValueError("label_temperature must be positive.")

    @property
    def patch_size(self) -> int:
        """Samples per ECG token: the product of the conv strides (16)."""
        size = 1
        for stride in self.ecg_conv_stride:
            size *= stride
        return size

    @property
    def zero_shot_temperature(self) -> float:
        """Temperature of the pipeline's label softmax (see `label_temperature`)."""
        return self.label_temperature

    @property
    def enabled_losses(self) -> list[str]:
        return [term for term in LOSS_TERMS if getattr(self, f"use_{term}")]


__all__ = ["CmeltConfig", "FLAN_T5_BASE", "LOSS_TERMS"]

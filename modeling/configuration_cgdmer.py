"""CG-DMER configuration: the single source of every hyper-parameter of the model.

"CG-DMER: Hybrid Contrastive-Generative Framework for Disentangled Multimodal ECG Representation Learning" (arXiv
2602.21154, ICASSP 2026). No code is released and only the abstract and secondary summaries could be read, so most
numbers are choices of this implementation. Sources in the comments: [paper] the abstract / summaries (what the
pieces are: spatio-temporal masking, masked report reconstruction, modality-specific and modality-shared encoders,
SigLIP-style alignment on the shared features); [ST-MEM] Na et al., ICLR 2024 (the per-lead patch ViT the
spatio-temporal design follows); [MAE] He et al. 2022; [BERT] Devlin et al. 2019 / [MedCPT] Jin et al. 2023 (the
report encoder's shape, as MERL's); [MISA] Hazarika et al. 2020 (shared / private encoders, soft orthogonality);
[SigLIP] Zhai et al. 2023; [MERL] Liu et al., ICML 2024; [ours] a choice where none of them says. docs/cgdmer.md gives
the reasons.
"""

from transformers import BertConfig, PreTrainedConfig

from .ecg_masking import spatiotemporal_mask_counts
from .configuration_ecg import ECGConfigChecksMixin
from .ecg_signal import CANONICAL_LEADS
from .pipeline_zero_shot_ecg import ZeroShotPipelineConfigMixin

# The paper's four components (its Table 3 adds them in this order: V1 siglip, V2 + ecg_reconstruction, V3 + mlm,
# V4 + disentanglement).
LOSS_TERMS = ("siglip", "ecg_reconstruction", "mlm", "disentanglement")
RECONSTRUCTION_NORMS = ("patch", "lead", "none")
TEXT_POOLINGS = ("mean", "cls")
REDUCTIONS = ("mean", "sum")


class CgdmerConfig(ECGConfigChecksMixin, ZeroShotPipelineConfigMixin, PreTrainedConfig):
    r"""Configuration of [`CgdmerModel`].

    Data layout:
        num_leads, sampling_rate, num_samples, lead_names: (B, 12, 5000), 10 s at 500 Hz in the order I, II, III, aVR,
            aVL, aVF, V1-V6 (the MERL benchmark the paper reports on).

    ECG encoder (a ViT over lead x time patches, after ST-MEM):
        patch_size (`int`, defaults to 125 [ours]): samples per patch; each lead is cut into num_samples / patch_size
            patches (40: 0.25 s each, the divisor of 5000 nearest ST-MEM's 0.3 s patches). The paper sweeps the
            patch number (its Fig. 2, values unknown).
        ecg_hidden_size, ecg_num_layers, ecg_num_heads, ecg_intermediate_size: 768, 12, 12, 3072 (ViT-B, ST-MEM's
            encoder) [ours]; pre-LN layers, ecg_layer_norm_eps 1e-6 (ViT's).
        ecg_dropout, ecg_attention_dropout (`float`, defaults to 0.0 [ST-MEM]).
        Positions: a learned embedding per lead plus fixed sine-cosine positions of the patch's time index [ST-MEM].
        The ECG representation is the mean of the encoder's output tokens (ST-MEM pools the same way).

    Spatio-temporal masking (`modeling.ecg_masking.spatiotemporal_mask`; the collator draws it):
        mask_ratio (`float`, defaults to 0.75 [MAE, ST-MEM]): share of the patches hidden from the encoder, exact per
            sample.
        mask_lead_ratio (`float`, defaults to 0.25 [ours]): share of the leads masked whole (3 of 12).
        mask_time_ratio (`float`, defaults to 0.25 [ours]): share of the time columns masked in every lead, as
            contiguous spans of `mask_time_span` patches (defaults to 4 [ours]: 1 s at patch 125). The rest of the
            masked patches are random.
        decoder_hidden_size, decoder_num_layers, decoder_num_heads, decoder_intermediate_size: the light
            reconstruction decoder, 256, 4, 4, 1024 [ST-MEM]; pre-LN; it sees all L x T positions (mask tokens where
            hidden), so a whole masked lead is rebuilt from the other leads.
        reconstruction_norm (`"patch"` [ST-MEM / MAE norm_pix_loss] | `"lead"` | `"none"`): the target is the input
            patch standardised over itself, its lead over the record, or as it is; reconstruction_norm_eps 1e-6
            [MAE]. The loss is the per-patch mean squared error averaged over the masked patches only.

    Report encoder and masked report reconstruction:
        text_config (`dict` or `BertConfig`): a BERT, default the shape of `ncbi/MedCPT-Query-Encoder` (BERT-base,
            30522 tokens) [MERL, MedCPT]; trained with the model (`freeze_text_encoder`, defaults to `False` [ours]:
            masked reconstruction needs an encoder that learns).
        text_pooling (`"mean"` [ours] over the report's words (the tokens between [CLS] and [SEP]), or `"cls"`
            [MedCPT]): the report representation. Words only, so that a two-word label prompt is pooled as a report.
        mlm_probability (`float`, defaults to 0.15 [BERT]): share of the report tokens corrupted (80 / 10 / 10).
        mlm_mask_token_id (`int`, defaults to 103: `[MASK]` of MedCPT's / BERT's uncased vocabulary): the family
            sets it from the tokenizer.
        The MLM head (dense + GELU + LayerNorm, decoder tied to the word embeddings [BERT]) reads the report tokens.

    Disentanglement [MISA]:
        hidden_size (`int`, defaults to 256 [MERL's shared space]): width of the projected tokens and of the shared
            and specific features.
        feature_encoder_intermediate_size (`int`, defaults to 256 [ours]): the shared and specific encoders are
            two-layer MLPs (Linear, GELU, Linear) over the projected tokens; the shared one has the same weights for
            ECG and text [MISA], each modality has its own specific one.
        With `use_disentanglement`, the reconstruction decoders read [shared; specific] per token (the specific
            features must carry what the shared ones do not), and `loss_disentanglement` is MISA's soft
            orthogonality (`orthogonality_loss`) between the pooled shared and specific features of each modality,
            plus between the two specific features with `orthogonality_between_specific` (defaults to `True` [MISA]);
            orthogonality_eps 1e-6 [MISA]. Without it there are no specific encoders and the decoders read the
            encoders' tokens (the paper's V1-V3).

    Alignment (SigLIP on the shared features only [paper]):
        siglip_logit_scale_init (`float`, defaults to log 10 [SigLIP]), siglip_logit_bias_init (-10 [SigLIP]),
            siglip_learnable (`True` [SigLIP]), siglip_reduction (`"sum"` [SigLIP: sum over the texts, mean over the
            ECGs] or `"mean"` over all pairs). The shared features are L2-normalised.
        contrastive_on_masked_inputs (`bool`, defaults to `False` [ours]): `False` aligns (and disentangles) the
            features of an unmasked pass of both modalities, the inputs zero-shot sees; `True` reuses the masked
            passes of the reconstruction terms (one pass per modality, as C-MELT / FLIP: cheaper, but trained on
            25 % of the patches).

    Loss terms:
        use_siglip, use_ecg_reconstruction, use_mlm, use_disentanglement (`bool`): switch each term (the paper's
            Table 3 variants); siglip_weight, ecg_reconstruction_weight, mlm_weight, disentanglement_weight (`float`,
            defaults to 1.0 [ours]) weight them in `loss`.

    Zero-shot:
        label_temperature (`float`, defaults to 0.1 [ours] = 1 / SigLIP's initial scale): the pipeline's softmax
            temperature over candidate labels (`zero_shot_temperature`).
    """

    model_type = "cgdmer"
    sub_configs_defaults = {"text_config": BertConfig}

    # data layout
    num_leads: int = 12
    sampling_rate: int = 500  # MERL benchmark
    num_samples: int = 5000  # 10 s
    lead_names: list[str] | None = None  # None -> CANONICAL_LEADS
    # ECG encoder [ST-MEM's ViT-B over per-lead patches]
    patch_size: int = 125  # [ours] 0.25 s, 40 patches per lead
    ecg_hidden_size: int = 768  # [ST-MEM]
    ecg_num_layers: int = 12  # [ST-MEM]
    ecg_num_heads: int = 12  # [ST-MEM]
    ecg_intermediate_size: int = 3072  # [ST-MEM]
    ecg_dropout: float = 0.0  # [ST-MEM]
    ecg_attention_dropout: float = 0.0  # [ST-MEM]
    ecg_layer_norm_eps: float = 1e-6  # [ViT]
    # spatio-temporal masking [paper: across leads and time; numbers ours unless marked]
    mask_ratio: float = 0.75  # [MAE, ST-MEM]
    mask_lead_ratio: float = 0.25  # [ours]
    mask_time_ratio: float = 0.25  # [ours]
    mask_time_span: int = 4  # [ours] patches per time span (1 s at patch 125)
    # reconstruction decoder [ST-MEM]
    decoder_hidden_size: int = 256
    decoder_num_layers: int = 4
    decoder_num_heads: int = 4
    decoder_intermediate_size: int = 1024
    reconstruction_norm: str = "patch"  # [ST-MEM / MAE norm_pix_loss]
    reconstruction_norm_eps: float = 1e-6  # [MAE]
    # report encoder [MERL / MedCPT shape] and MLM [BERT]
    text_config: dict | BertConfig | None = None
    freeze_text_encoder: bool = False  # [ours]
    text_pooling: str = "mean"  # [ours]; MedCPT: "cls"
    mlm_probability: float = 0.15  # [BERT]
    mlm_mask_token_id: int = 103  # [MedCPT / BERT uncased vocabulary]
    # disentanglement [MISA]
    hidden_size: int = 256  # [MERL]
    feature_encoder_intermediate_size: int = 256  # [ours]
    orthogonality_between_specific: bool = True  # [MISA]
    orthogonality_eps: float = 1e-6  # [MISA]
    # alignment [SigLIP]
    siglip_logit_scale_init: float = 2.302585092994046  # log(10) [SigLIP]
    siglip_logit_bias_init: float = -10.0  # [SigLIP]
    siglip_learnable: bool = True  # [SigLIP]
    siglip_reduction: str = "sum"  # [SigLIP]
    contrastive_on_masked_inputs: bool = False  # [ours]
    shared_batch_norm: bool = True  # [ours]
    # loss terms [paper Table 3]; weights [ours]
    use_siglip: bool = True
    use_ecg_reconstruction: bool = True
    use_mlm: bool = True
    use_disentanglement: bool = True
    siglip_weight: float = 1.0
    ecg_reconstruction_weight: float = 1.0
    mlm_weight: float = 1.0
    disentanglement_weight: float = 1.0
    # zero-shot
    label_temperature: float = 0.1  # [ours]
    initializer_range: float = 0.02  # [BERT, ViT]

    def __post_init__(self, **kwargs):
        if self.lead_names is None:
            self.lead_names = list(CANONICAL_LEADS)
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Called by `@strict` validation and before `save_pretrained`."""
        if len(self.lead_names) != self.num_leads:
            raise ValueError(f"lead_names has {len(self.lead_names)} names but num_leads is {self.num_leads}.")
        if self.patch_size <= 0 or self.num_samples % self.patch_size:
            raise ValueError(f"patch_size ({self.patch_size}) must divide num_samples ({self.num_samples}).")
        for width, heads, name in [(self.ecg_hidden_size, self.ecg_num_heads, "ecg"),
                                   (self.decoder_hidden_size, self.decoder_num_heads, "decoder")]:
            if width % heads != 0:
                raise ValueError(f"the {name} width ({width}) must be divisible by its number of heads ({heads}).")
            if width % 2 != 0:
                raise ValueError(f"the {name} width ({width}) must be even (sine-cosine positions).")
        if self.mask_time_span < 1:
            raise ValueError(f"mask_time_span must be at least 1, got {self.mask_time_span}.")
        try:
            spatiotemporal_mask_counts(self.num_leads, self.num_patches_per_lead, self.mask_ratio,
                                       self.mask_lead_ratio, self.mask_time_ratio)
        except ValueError as error:
            raise ValueError(f"mask_ratio / mask_lead_ratio / mask_time_ratio: {error}") from None
        if not 0 <= self.mlm_probability <= 1:
            raise ValueError(f"mlm_probability must lie in [0, 1], got {self.mlm_probability}.")
        if not 0 <= self.mlm_mask_token_id < self.text_config.vocab_size:
            raise ValueError(f"mlm_mask_token_id ({self.mlm_mask_token_id}) is not in the text vocabulary "
                             f"(size {self.text_config.vocab_size}).")
        if self.reconstruction_norm not in RECONSTRUCTION_NORMS:
            raise ValueError(f"reconstruction_norm must be one of {RECONSTRUCTION_NORMS}, "
                             f"got {self.reconstruction_norm!r}.")
        if self.text_pooling not in TEXT_POOLINGS:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLINGS}, got {self.text_pooling!r}.")
        if self.siglip_reduction not in REDUCTIONS:
            raise ValueError(f"siglip_reduction must be one of {REDUCTIONS}, got {self.siglip_reduction!r}.")
        if self.label_temperature <= 0:
            raise ValueError("label_temperature must be positive.")
        if not any(getattr(self, f"use_{term}") for term in LOSS_TERMS):
            raise ValueError(f"every loss term is off; switch on at least one of {LOSS_TERMS}.")

    @property
    def num_patches_per_lead(self) -> int:
        """Time patches of each lead: num_samples / patch_size (40)."""
        return self.num_samples // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patches of a record, all leads: num_leads x num_patches_per_lead (480)."""
        return self.num_leads * self.num_patches_per_lead

    @property
    def zero_shot_temperature(self) -> float:
        """Temperature of the pipeline's label softmax (see `label_temperature`)."""
        return self.label_temperature

    @property
    def enabled_losses(self) -> list[str]:
        return [term for term in LOSS_TERMS if getattr(self, f"use_{term}")]


__all__ = ["CgdmerConfig", "LOSS_TERMS"]

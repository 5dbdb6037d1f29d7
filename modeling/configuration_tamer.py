"""TAMER configuration: the single source of every hyper-parameter of the model.

Defaults follow the TAMER paper (Zhou et al., CVPR 2026) and, where it is silent, the MERL code it builds on; the
comment next to each field says where the value comes from.
"""

from transformers import BertConfig, PreTrainedConfig

from .configuration_ecg import ECGConfigChecksMixin
from .ecg_signal import CANONICAL_LEADS
from .pipeline_zero_shot_ecg import ZeroShotPipelineConfigMixin
LOSS_TERMS = ("rlca", "uecr", "rada", "rgwr")


class TamerConfig(ECGConfigChecksMixin, ZeroShotPipelineConfigMixin, PreTrainedConfig):
    r"""Configuration of [`TamerModel`].

    Args:
        num_leads (`int`, defaults to 12): ECG leads, in the order of `lead_names`.
        sampling_rate (`int`, defaults to 500): Hz of `input_values` (paper: 500 Hz).
        num_samples (`int`, defaults to 5000): samples per record, 10 s at 500 Hz. The attention pooler has one learned
            position per token, so the model accepts exactly this length; the feature extractor crops or pads to it.
        lead_names (`list[str]`): canonical lead order I, II, III, aVR, aVL, aVF, V1-V6.
        stft_n_fft, stft_win_length, stft_hop_length (`int`): Hann window of 0.25 s (125 samples) with a 62-point
            overlap (hop 63), 125-point FFT -> 63 bins (paper §3; scipy.signal.stft defaults for that window).
        spectrogram_log (`bool`, defaults to `False`): apply `log1p` to the magnitude (the paper shows linear magnitude).
        ecg_stem_channels, ecg_channels, ecg_blocks_per_stage: 1D ResNet; [3, 4, 6, 3] is ResNet-34 (paper).
        spec_stem_channels, spec_channels, spec_blocks_per_stage: the light 2D CNN of the spectrogram branch
            (~3.4 M parameters with the defaults; the paper gives no architecture, see reference/paper_code.md §1.3).
        projection_dim (`int`, defaults to 256): the shared latent size (MERL).
        wlai_num_layers, wlai_num_heads: WLAI self-attention blocks over concat(ECG tokens, spectrogram tokens)
            (paper: two residual blocks).
        pool_num_heads (`int`, defaults to 4): heads of the class-token attention pooler (MERL AttentionPool).
        uecr_dropout (`float`, defaults to 0.1): dropout making the two UECR views of the ECG embedding (MERL).
        rgwr_num_heads (`int`, defaults to 1): heads of the RGWR cross-attention (paper: one Q, K, V).
        text_config (`dict` or `BertConfig`): the frozen report encoder, default the shape of
            `ncbi/MedCPT-Query-Encoder` (BERT-base, 30522 tokens).
        text_pooling (`str`, defaults to `"cls"`): report global feature from the last hidden state of [CLS]
            (`"cls"`, the MedCPT query embedding) or BERT's `pooler_output` (`"pooler"`, as MERL).
        rlca_temperature, uecr_temperature, rada_temperature, rgwr_temperature (`float`, defaults to 0.04): InfoNCE
            temperatures (paper: lambda = 0.04). `rada_temperature` also scales `logits_per_ecg` for zero-shot.
        use_rlca, use_uecr, use_rada, use_rgwr (`bool`): switch each loss term (the paper's ablations).
        use_spectrogram (`bool`, defaults to `True`): build the STFT branch (spectrogram encoder and its tokens).
            `False` is Table 4's "time + report": no spectrogram encoder, WLAI over the ECG tokens alone, and no RLCA
            (which aligns ECG and spectrogram, so `use_rlca=True` is refused).
        use_wlai (`bool`, defaults to `True`): `False` is Table 4's "w/o WLAI": no self-attention blocks, z^e is the
            class-token attention pool over the ECG tokens alone (MERL's ECG head); the spectrogram then acts only
            through RLCA.
        pool_output_projection (`bool`, defaults to `False`): a Linear(D, D) after the attention pool (MERL's
            `AttentionPool2d.c_proj`).
        uecr_projection_heads (`bool`, defaults to `False`): each UECR view first goes through its own bias-free
            Linear(D, D), then dropout (MERL's `linear1`/`linear2` + `Dropout(0.1)`); `False`: two dropout samples
            of the same vector (paper §3.2.3).
        uecr_input (`str`, defaults to `"embedding"`): what UECR perturbs: z^e (`"embedding"`, paper) or the mean
            of the ECG tokens (`"token_mean"`, MERL's `avgpool(downconv(...))`).
        exclude_positive_from_denominator (`bool`, defaults to `False`): the paper prints InfoNCE with 1[j != i] in
            the denominator (Eq. 1); MERL/CLIP code keeps the positive. `False` is the standard form.
        contrastive_reduction (`str`, defaults to `"mean"`): L_CL over its two directions: `"mean"` (paper Eq. 1's
            1/(2B); open_clip) or `"sum"` (MERL's `clip_loss`, twice the mean).
        rgwr_clip_word_weights (`list[float]`, *optional*): clip each report's word weights to these quantiles
            before normalising them (MGCA code: [0.1, 0.9]); `None`: the [CLS] attention as it is (paper).
        rgwr_mean_over_words (`bool`, defaults to `False`): the report term of RGWR as printed (paper Eq. 4,
            1/(2NM)): the weighted sum over words is also divided by the report's word count M. `False`: MGCA's code,
            weights summing to 1 per report and no 1/M.
    """

    model_type = "tamer"
    sub_configs_defaults = {"text_config": BertConfig}

    # data layout
    num_leads: int = 12
    sampling_rate: int = 500  # paper: MIMIC-IV-ECG at 500 Hz
    num_samples: int = 5000  # 10 s
    lead_names: list[str] | None = None  # None -> CANONICAL_LEADS
    # spectrogram (paper: Hann 0.25 s, 62-point overlap)
    stft_n_fft: int = 125
    stft_win_length: int = 125
    stft_hop_length: int = 63
    spectrogram_log: bool = False
    # ECG encoder: randomly initialised 1D ResNet-34 without max-pool (paper; MERL resnet1d)
    ecg_stem_channels: int = 64
    ecg_stem_kernel_size: int = 7
    ecg_channels: list[int] | None = None  # None -> [64, 128, 256, 512]
    ecg_blocks_per_stage: list[int] | None = None  # None -> [3, 4, 6, 3] (ResNet-34)
    # spectrogram encoder: light 2D CNN
    spec_stem_channels: int = 64
    spec_channels: list[int] | None = None  # None -> [64, 128, 256, 384]
    spec_blocks_per_stage: list[int] | None = None  # None -> [1, 1, 1, 1]
    # shared space and fusion
    projection_dim: int = 256  # MERL
    wlai_num_layers: int = 2  # paper: z1 = l + att(l), z2 = z1 + att(z1)
    wlai_num_heads: int = 4
    attention_dropout: float = 0.0
    pool_num_heads: int = 4  # MERL AttentionPool2d
    uecr_dropout: float = 0.1  # MERL
    rgwr_num_heads: int = 1
    # report encoder (frozen)
    text_config: dict | BertConfig | None = None
    text_pooling: str = "cls"
    # losses
    rlca_temperature: float = 0.04  # paper: lambda = 0.04 (0.03 and 0.05 worse)
    uecr_temperature: float = 0.04
    rada_temperature: float = 0.04
    rgwr_temperature: float = 0.04
    use_rlca: bool = True
    use_uecr: bool = True
    use_rada: bool = True
    use_rgwr: bool = True
    # architecture switches (paper Table 4 ablations; MERL's structure)
    use_spectrogram: bool = True  # False: Table 4 "time + report"
    use_wlai: bool = True  # False: Table 4 "w/o WLAI", z^e = attention pool over the ECG tokens (MERL)
    pool_output_projection: bool = False  # MERL AttentionPool2d.c_proj
    uecr_projection_heads: bool = False  # MERL linear1 / linear2 (bias-free) before the dropouts
    uecr_input: str = "embedding"  # paper: z^e; MERL: "token_mean"
    # printed paper vs reference code (docs/training.md, "Paper presets and ablations")
    exclude_positive_from_denominator: bool = False  # paper Eq. 1 prints 1[j != i]; MERL/CLIP code: False
    contrastive_reduction: str = "mean"  # paper Eq. 1: 1/(2B) (mean of directions); MERL clip_loss: "sum"
    rgwr_clip_word_weights: list[float] | None = None  # MGCA code: [0.1, 0.9]; paper: None
    rgwr_mean_over_words: bool = False  # paper Eq. 4 prints 1/(2NM): True; MGCA code: False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.lead_names is None:
            self.lead_names = list(CANONICAL_LEADS)
        if self.ecg_channels is None:
            self.ecg_channels = [64, 128, 256, 512]
        if self.ecg_blocks_per_stage is None:
            self.ecg_blocks_per_stage = [3, 4, 6, 3]
        if self.spec_channels is None:
            self.spec_channels = [64, 128, 256, 384]
        if self.spec_blocks_per_stage is None:
            self.spec_blocks_per_stage = [1, 1, 1, 1]
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Called by `@strict` validation and before `save_pretrained`."""
        if len(self.lead_names) != self.num_leads:
            raise ValueError(f"lead_names has {len(self.lead_names)} names but num_leads is {self.num_leads}.")
        if len(self.ecg_channels) != len(self.ecg_blocks_per_stage):
            raise ValueError("ecg_channels and ecg_blocks_per_stage must have the same length (one entry per stage).")
        if len(self.spec_channels) != len(self.spec_blocks_per_stage):
            raise ValueError("spec_channels and spec_blocks_per_stage must have the same length (one entry per stage).")
        for name in ("wlai_num_heads", "pool_num_heads", "rgwr_num_heads"):
            if self.projection_dim % getattr(self, name) != 0:
                raise ValueError(f"projection_dim ({self.projection_dim}) must be divisible by {name}.")
        if self.text_pooling not in ("cls", "pooler"):
            raise ValueError(f"text_pooling must be 'cls' or 'pooler', got {self.text_pooling!r}.")
        if self.stft_win_length > self.stft_n_fft:
            raise ValueError("stft_win_length must not exceed stft_n_fft.")
        for term in LOSS_TERMS:
            if getattr(self, f"{term}_temperature") <= 0:
                raise ValueError(f"{term}_temperature must be positive.")
        if self.use_rlca and not self.use_spectrogram:
            raise ValueError("use_rlca=True needs use_spectrogram=True: RLCA aligns the ECG with its spectrogram. "
                             "Without the spectrogram branch set use_rlca=False too (Table 4 'time + report').")
        if self.use_spectrogram and not (self.use_rlca or self.use_wlai):
            raise ValueError("use_spectrogram=True with neither RLCA nor WLAI builds a spectrogram encoder that "
                             "nothing uses; set use_spectrogram=False.")
        if self.contrastive_reduction not in ("mean", "sum"):
            raise ValueError(f"contrastive_reduction must be 'mean' or 'sum', got {self.contrastive_reduction!r}.")
        if self.uecr_input not in ("embedding", "token_mean"):
            raise ValueError(f"uecr_input must be 'embedding' or 'token_mean', got {self.uecr_input!r}.")
        clip = self.rgwr_clip_word_weights
        if clip is not None and not (len(clip) == 2 and 0 <= clip[0] < clip[1] <= 1):
            raise ValueError(f"rgwr_clip_word_weights must be two quantiles 0 <= low < high <= 1, got {clip!r}.")

    @property
    def zero_shot_temperature(self) -> float:
        """Temperature of the pipeline's label softmax: RADA's, the term that aligns ECGs with text."""
        return self.rada_temperature

    @property
    def enabled_losses(self) -> list[str]:
        return [term for term in LOSS_TERMS if getattr(self, f"use_{term}")]


__all__ = ["TamerConfig", "CANONICAL_LEADS"]

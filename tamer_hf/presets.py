"""TAMER presets: sizes, the paper's model as printed and as the reference code has it, its Table 4 ablations, MERL.

Sizes (`SIZE_PRESETS`): `paper` (TamerConfig's defaults), `small`, `quick` (the offline quick start), `tiny` (tests).
Reproduction presets (`MODEL_PRESETS`, at the paper's sizes unless said):

- `paper`: the paper's model and losses in their **printed** form (Eq. 1 without the positive in the denominator,
  Eq. 4's 1/(2NM)); `paper-code`: the same model in the form of the code TAMER builds on (MERL's CLIP loss, MGCA's
  word weights, MERL's UECR heads and `pooler_output`).
- Table 4 rows, each the `paper` preset with one piece removed: `no-rlca`, `no-wlai`, `no-rgwr`, `time-report`
  (no spectrogram, hence no RLCA), `time-spectrogram` (no report terms: RADA and RGWR off).
- `merl`: MERL's model (Liu et al., ICML 2024, ResNet-18 variant, the baseline of TAMER's tables): ResNet-18-1D,
  attention pool, 256-d space, frozen Med-CPT `pooler_output`, CLIP loss (RADA) + uni-modal dropout alignment (UECR)
  at temperature 0.07.

`preset_config(name, model_size=...)` puts a reproduction preset at another size (e.g. `no-wlai` at `quick` for a CPU
run). `python -m tamer_hf.parameter_count` prints every preset's parameter count with a MedCPT-shaped report encoder.
"""

from .modeling.configuration_tamer import TamerConfig

# The fields a size preset sets (every other field is the preset's own).
SIZE_FIELDS = (
    "ecg_stem_channels", "ecg_stem_kernel_size", "ecg_channels", "ecg_blocks_per_stage",
    "spec_stem_channels", "spec_channels", "spec_blocks_per_stage",
    "projection_dim", "wlai_num_heads", "pool_num_heads",
)

SIZE_PRESETS = {
    "paper": {},  # TamerConfig's defaults: ResNet-34-1D, 256-d space
    "small": dict(
        ecg_stem_channels=32, ecg_channels=[32, 64, 128, 128], ecg_blocks_per_stage=[1, 1, 1, 1],
        spec_stem_channels=16, spec_channels=[16, 32, 64, 64], spec_blocks_per_stage=[1, 1, 1, 1],
        projection_dim=64, wlai_num_heads=4, pool_num_heads=4,
    ),
    # The offline quick start's model (~0.3 s per step of 32 ECGs on 2 CPU cores). A fifth ECG stage halves the tokens
    # (157 instead of 313, so WLAI's self-attention costs about a third) and, with the wider stem kernel and the
    # second block in the last stages, lets each token see ~0.8 s: P wave, QRS and T of one beat together.
    "quick": dict(
        ecg_stem_channels=16, ecg_stem_kernel_size=15, ecg_channels=[16, 32, 64, 64, 64],
        ecg_blocks_per_stage=[1, 1, 2, 2, 2],
        spec_stem_channels=8, spec_channels=[8, 8, 16, 16], spec_blocks_per_stage=[1, 1, 1, 1],
        projection_dim=64, wlai_num_heads=4, pool_num_heads=4,
    ),
    "tiny": dict(
        ecg_stem_channels=8, ecg_channels=[8, 16, 16, 32], ecg_blocks_per_stage=[1, 1, 1, 1],
        spec_stem_channels=8, spec_channels=[8, 8, 16, 16], spec_blocks_per_stage=[1, 1, 1, 1],
        projection_dim=16, wlai_num_heads=2, pool_num_heads=2,
    ),
}

# TAMER's losses as printed in the paper (docs/training.md, "Paper presets and ablations", lists both sources).
PRINTED_FORM = dict(
    exclude_positive_from_denominator=True,  # Eq. 1: 1[j != i] in the denominator
    contrastive_reduction="mean",  # Eq. 1: 1/(2B) over both directions
    rgwr_clip_word_weights=None,  # §3.1: the [CLS] attention weights as they are
    rgwr_mean_over_words=True,  # Eq. 4: 1/(2NM) in front of the weighted sum over words
    uecr_projection_heads=False,  # §3.2.3: dropout on z^e gives the two views
    text_pooling="cls",  # not stated; the MedCPT query embedding (last hidden state of [CLS])
)
# The same pieces in the code TAMER says it builds on (MERL@38799b7, MGCA@680fe4a; TAMER's own code is not public).
CODE_FORM = dict(
    exclude_positive_from_denominator=False,  # MERL utils_loss.clip_loss: cross-entropy, positive included
    contrastive_reduction="sum",  # MERL clip_loss returns loss_t + loss_i
    rgwr_clip_word_weights=[0.1, 0.9],  # MGCA mgca_module.py: quantile clip, then normalise to sum 1
    rgwr_mean_over_words=False,  # MGCA: sum(CE * weights) / batch
    uecr_projection_heads=True,  # MERL utils_builder.ECGCLIP: linear1 / linear2 (bias-free) + Dropout(0.1)
    text_pooling="pooler",  # MERL get_text_emb: pooler_output
)

MODEL_PRESETS = {
    "paper": dict(PRINTED_FORM),
    "paper-code": dict(CODE_FORM),
    # Table 4, one row each (zero-shot / domain-shift macro-AUC in the paper: full model 81.19 / 83.08)
    "no-rlca": dict(PRINTED_FORM, use_rlca=False),  # 80.62 / 81.49
    "no-wlai": dict(PRINTED_FORM, use_wlai=False),  # 76.16 / 78.94
    "no-rgwr": dict(PRINTED_FORM, use_rgwr=False),  # 78.73 / 79.44
    "time-report": dict(PRINTED_FORM, use_spectrogram=False, use_rlca=False),  # 77.53 / 79.12
    "time-spectrogram": dict(PRINTED_FORM, use_rada=False, use_rgwr=False),  # - / 63.33 (no zero-shot without text)
    "merl": dict(
        ecg_blocks_per_stage=[2, 2, 2, 2],  # MERL resnet1d.ResNet18 (TAMER's 114.27 M MERL is this variant)
        use_spectrogram=False, use_wlai=False, use_rlca=False, use_rgwr=False,
        pool_output_projection=True,  # AttentionPool2d(spacial_dim=313, embed_dim=256, num_heads=4).c_proj
        # avgpool(downconv(...)) -> linear1 / linear2 -> Dropout(0.1)
        uecr_projection_heads=True, uecr_input="token_mean", uecr_dropout=0.1,
        text_pooling="pooler",  # get_text_emb: MedCPT pooler_output, frozen (no_grad)
        exclude_positive_from_denominator=False, contrastive_reduction="sum",  # clip_loss: CE(sim) + CE(sim.T)
        uecr_temperature=0.07, rada_temperature=0.07,  # clip_loss(temperature=0.07) for CMA and UMA
    ),
    # sizes with TamerConfig's default loss forms (standard InfoNCE, directions averaged)
    "small": SIZE_PRESETS["small"],
    "quick": SIZE_PRESETS["quick"],
    "tiny": SIZE_PRESETS["tiny"],
}


def preset_fields(name: str, model_size: str | None = None) -> dict:
    """The TamerConfig fields of preset `name`; with `model_size`, its size fields are those of that size preset."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}.")
    fields = dict(MODEL_PRESETS[name])
    if model_size is not None:
        if model_size not in SIZE_PRESETS:
            raise ValueError(f"Unknown model size {model_size!r}; choose one of {sorted(SIZE_PRESETS)}.")
        fields = {key: value for key, value in fields.items() if key not in SIZE_FIELDS}
        fields.update(SIZE_PRESETS[model_size])
    return fields


def preset_config(name: str, text_config=None, model_size: str | None = None, **overrides) -> TamerConfig:
    """The TamerConfig of preset `name` (at `model_size` when given), with an optional report-encoder config and
    field overrides."""
    return TamerConfig(text_config=text_config, **{**preset_fields(name, model_size), **overrides})

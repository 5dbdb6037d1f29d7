"""Model-size presets: `paper` (the defaults of TamerConfig), `small` and `quick` (CPU pre-training), `tiny` (tests)."""

from .modeling.configuration_tamer import TamerConfig

MODEL_PRESETS = {
    "paper": {},
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


def preset_config(name: str, text_config=None, **overrides) -> TamerConfig:
    """The TamerConfig of preset `name`, with an optional report-encoder config and field overrides."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}.")
    return TamerConfig(text_config=text_config, **{**MODEL_PRESETS[name], **overrides})

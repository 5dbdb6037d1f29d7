"""Model families: what a family gives the family-agnostic pre-training loop (`tamer_hf.training`).

A family is a module `tamer_hf.families.<model_type>` that defines `FAMILY = ModelFamily(...)`. The loop, the
evaluation harness, the pipeline, the model card and the Hub code look families up by `model_type` and never name
one, so adding a family is adding its `modeling/*_<name>.py` files and one module here.

The contract, in the order the loop uses it:

1. `add_arguments(parser)` adds the family's own command-line options (the loop's options are generic).
   `check_arguments(args)` checks them once the defaults below are filled (and may fill options that depend on
   others).
2. `quick_start_defaults` / `paper_defaults` fill the loop options left unset (without / with `--dataset`).
3. `train_tokenizer(reports, args)` builds the tokenizer of the local text encoder (`--text_encoder local`); the loop
   runs it once, on the main process, and gives every process the same object.
4. `build(args, reports, tokenizer)` returns `(model, processor)`: a randomly initialised model of
   `--model_preset` (its text encoder pretrained from `--text_encoder`, or local with `tokenizer`).
5. `make_collator(args, model, processor, reports, accelerator)` returns a callable turning training rows
   `{"ecg": (12, T) float32 mV, "report_id": int, "row_index": int}` into the model's keyword arguments
   (tokenising, masking, negative sampling). Every random choice comes from torch's global RNG, which the loop seeds
   per batch from `--seed` and the batch's row indices (`training.BatchSeededCollator`): a batch's draws are the same
   whatever the prefetching, the workers or a resume.
6. The loop calls `model(**batch, return_loss=True, gather=gather)`; the output has `loss` and one `loss_<term>` per
   entry of `loss_terms` (None when the term is off). `use_<term>` config fields switch the terms
   (`--no_<term>` on the command line).
7. Validation, the pipeline and evaluation use only `model.get_ecg_features(input_values=...)`,
   `model.get_text_features(input_ids=..., attention_mask=...)`, `config.zero_shot_temperature` and
   `processor.feature_extractor` / `processor.tokenizer`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_MODEL_TYPE = "tamer"  # the family of `examples/pretrain.py` without --model_type


@dataclass
class ModelFamily:
    model_type: str
    paper: str  # citation line shown in help, cards and the README table
    config_class: type
    model_class: type
    processor_class: type
    feature_extractor_class: type
    presets: dict[str, dict[str, Any]]
    loss_terms: tuple[str, ...]
    build: Callable
    make_collator: Callable
    train_tokenizer: Callable
    quick_start_defaults: dict[str, Any] = field(default_factory=dict)
    paper_defaults: dict[str, Any] = field(default_factory=dict)
    add_arguments: Callable | None = None
    check_arguments: Callable | None = None
    # further Auto classes the family registers, e.g. {"AutoModelForAudioClassification": SomeHeadModel}
    extra_auto_models: dict[str, type] = field(default_factory=dict)

    def preset_config(self, name: str, **overrides):
        """The config of preset `name` with field overrides."""
        if name not in self.presets:
            raise ValueError(f"Unknown {self.model_type} preset {name!r}; choose one of {sorted(self.presets)}.")
        return self.config_class(**{**self.presets[name], **overrides})


def family_names() -> list[str]:
    """Every family module of this package (`tamer`, `cmelt`, ...)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def get_family(model_type: str) -> ModelFamily:
    names = family_names()
    if model_type not in names:
        raise ValueError(f"Unknown model_type {model_type!r}; choose one of {names}.")
    return importlib.import_module(f"{__name__}.{model_type}").FAMILY


def all_families() -> list[ModelFamily]:
    return [get_family(name) for name in family_names()]





def ecg_input_values(feature_extractor, rows: list[dict], sampling_rate: float):
    """Training rows' `ecg` (12, T) mV -> `input_values` (B, 12, 5000): the feature extractor, the same transform as
    inference, called once on the stacked batch when every record has the same shape."""
    import numpy as np

    ecgs = [np.asarray(row["ecg"], dtype=np.float32) for row in rows]
    if len({ecg.shape for ecg in ecgs}) == 1:
        ecgs = np.stack(ecgs)  # (B, 12, T): one vectorised call
    return feature_extractor(ecgs, sampling_rate=sampling_rate, return_tensors="pt")["input_values"]
__all__ = ["DEFAULT_MODEL_TYPE", "ModelFamily", "all_families", "ecg_input_values", "family_names", "get_family"]

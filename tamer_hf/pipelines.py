"""Using and saving the zero-shot ECG pipeline from the `tamer_hf` library.

`tamer_hf.pipeline(...)` passes `pipeline_class=` explicitly, so everything comes from the installed `tamer_hf` and no
remote code runs, whatever the folder's config.json lists, and the task defaults to zero-shot ECG classification
(`transformers.pipeline(model=folder)` can only infer it with `trust_remote_code=True`: hf_conventions.md §3).
"""

from __future__ import annotations

import os

import transformers

from .modeling.pipeline_zero_shot_ecg import TASK, ZeroShotECGClassificationPipeline, register_pipeline


def pipeline(task: str = TASK, model=None, **kwargs):
    """`transformers.pipeline` with the TAMER task registered and its class given explicitly.

    ```python
    >>> import tamer_hf
    >>> classifier = tamer_hf.pipeline("zero-shot-ecg-classification", model="runs/tamer")
    ```
    """
    register_pipeline()
    if task == TASK:
        kwargs.setdefault("pipeline_class", ZeroShotECGClassificationPipeline)
        kwargs.setdefault("trust_remote_code", False)
    return transformers.pipeline(task, model=model, **kwargs)


def save_pretrained_with_pipeline(model, processor, save_directory: str | os.PathLike) -> None:
    """`model.save_pretrained` + `processor.save_pretrained` into one folder (what `pipeline(..., model=folder)` loads).

    Plain `save_pretrained` already writes `config.custom_pipelines` and copies `pipeline_zero_shot_ecg.py`
    (`ZeroShotPipelineConfigMixin`), so this is only the two calls in one.
    """
    model.save_pretrained(save_directory)
    processor.save_pretrained(save_directory)


__all__ = ["pipeline", "save_pretrained_with_pipeline", "register_pipeline", "TASK", "ZeroShotECGClassificationPipeline"]

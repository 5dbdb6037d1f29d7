"""Using and saving the zero-shot ECG pipeline from the `tamer_hf` library.

`tamer_hf.pipeline(...)` exists because of a transformers behaviour (reference/hf_conventions.md §3, pitfall 7): once a
checkpoint lists the task in `config.custom_pipelines` (which it must, so that it works with `trust_remote_code=True`
where `tamer_hf` is not installed), `transformers.pipeline(task, model=path)` refuses to run without
`trust_remote_code=True` even when the task is registered locally. Passing `pipeline_class=` is the documented way
around it; this wrapper does that, so everything comes from the installed `tamer_hf` and no remote code runs.
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
    """Save model + processor so that `pipeline(TASK, model=save_directory, trust_remote_code=True)` works without
    `tamer_hf`: writes `config.custom_pipelines` and copies `pipeline_zero_shot_ecg.py` next to the other remote-code files.

    `Pipeline.save_pretrained` does the first two but does not save the processor (hf_conventions §3), hence this.
    """
    register_pipeline()
    classifier = ZeroShotECGClassificationPipeline(
        model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor, device=model.device
    )
    classifier.save_pretrained(save_directory)
    processor.save_pretrained(save_directory)


__all__ = ["pipeline", "save_pretrained_with_pipeline", "register_pipeline", "TASK", "ZeroShotECGClassificationPipeline"]

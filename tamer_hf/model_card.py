"""The model card (README.md) written next to a pre-trained checkpoint of any family: YAML metadata + usage + metrics.

Everything family-specific comes from the training summary (`model_type`, `family`: the family's citation line).
"""

from __future__ import annotations

import json
import os

TAGS = ["ecg", "electrocardiogram", "zero-shot-ecg-classification", "contrastive-learning", "medical",
        "time-series", "custom_code"]


def write_model_card(folder: str | os.PathLike, summary: dict | None = None, repo_id: str | None = None) -> str:
    """Write `folder/README.md` from the training summary (`training_summary.json` when `summary` is None).

    Works offline: `ModelCard.validate()` needs the Hub, so it is not called (hf_conventions §7).
    """
    from huggingface_hub import ModelCard, ModelCardData

    if summary is None:
        path = os.path.join(folder, "training_summary.json")
        summary = json.load(open(path, encoding="utf-8")) if os.path.isfile(path) else {}
    dataset = summary.get("dataset") or "unknown"
    datasets = [dataset] if "/" in dataset and not os.path.exists(dataset) else None  # only Hub ids belong here
    test = summary.get("test") or {}
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="other",  # "zero-shot-ecg-classification" is not a Hub task id: it is in the tags
        tags=[summary.get("model_type") or "ecg-report-model", *TAGS],
        datasets=datasets,
        metrics=["roc_auc"],
        base_model=summary.get("text_encoder") if "/" in str(summary.get("text_encoder", "")) else None,
    )
    model_id = repo_id or "path/to/this/folder"
    model_type = summary.get("model_type") or "unknown"
    family_line = summary.get("family") or f"An ECG-report model of family `{model_type}`"
    family_name = family_line.split(":")[0] if summary.get("family") else model_type
    prompting = summary.get("zero_shot_prompts") or {}
    template = prompting.get("template", "{}")
    template_argument = "" if template == "{}" else f", hypothesis_template={template!r}"
    prompt_kind = "full clinical description" if prompting.get("prompts") == "description" else "clinical name"
    results = "Not evaluated (no labelled test split)."
    if test:
        rows = "\n".join(f"| {name} | {'excluded' if auc is None else f'{auc:.4f}'} |"
                         for name, auc in test.get("per_class", {}).items())
        results = (f"Zero-shot macro-AUC on {test['num_records']} held-out records: **{test['macro_auc']:.4f}** "
                   f"(cosine between the ECG embedding and each label's {prompt_kind}, written through the "
                   f"template `{template}`).\n\n"
                   f"| Label | AUC |\n|---|---|\n{rows}")
    content = f"""---
{card_data.to_yaml()}
---

# {family_name} zero-shot 12-lead ECG model

{family_line}, trained with `tamer-hf`'s `examples/pretrain.py --model_type {model_type}`. It embeds a 10 s, 500 Hz,
12-lead ECG and free-text label prompts in one space; the zero-shot score of a label is their cosine similarity.

## Usage

```python
import tamer_hf  # registers the classes and the pipeline task
classifier = tamer_hf.pipeline("zero-shot-ecg-classification", model="{model_id}")
classifier(ecg_array, sampling_rate=500, candidate_labels=["atrial fibrillation", "sinus rhythm"]{template_argument})
```

Without `tamer-hf` installed (the modeling code travels with the checkpoint):

```python
from transformers import AutoModel, AutoProcessor, pipeline
model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{model_id}", trust_remote_code=True)
classifier = pipeline("zero-shot-ecg-classification", model="{model_id}", trust_remote_code=True)
```

## Training

- Data: {dataset}; {summary.get('train_records', '?')} training records, {summary.get('unique_reports', '?')} unique reports.
- Model preset: {summary.get('model_preset', '?')}; report encoder: {summary.get('text_encoder', '?')}.
- Loss terms: {', '.join(summary.get('loss_terms', [])) or '?'}.
- Optimizer steps: {summary.get('completed_steps', '?')} on {summary.get('num_processes', '?')} process(es).

## Results

{results}

## Limitations

A zero-shot ECG model is a research tool, not a medical device. Scores are cosine similarities, not calibrated
probabilities; check them on labelled data from your own population before any use.
"""
    path = os.path.join(folder, "README.md")
    ModelCard(content).save(path)
    return path


__all__ = ["write_model_card", "TAGS"]

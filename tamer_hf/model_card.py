"""The model card (README.md) of a saved checkpoint of any family: YAML metadata with a `model-index` of the measured
zero-shot macro-AUCs, usage, training, results, licence and citation.

Everything family-specific comes from the training summary (`model_type`, `family`: the family's citation line). The
measured numbers come from `training_summary.json` (the held-out test split scored at the end of `tamer pretrain`)
and from every `results.json` that `tamer eval` wrote under the folder (its default `--output_dir` is
`<model>/eval/<label_set>/`), unchanged, so a card's `model-index` equals those files.
"""

from __future__ import annotations

import glob
import json
import os

from .commands import PROGRAM
from .modeling.pipeline_zero_shot_ecg import TASK

TAGS = ["ecg", "electrocardiogram", "zero-shot-ecg-classification", "contrastive-learning", "medical",
        "time-series", "custom_code"]
LICENSE = "apache-2.0"  # the code's licence (setup.cfg); the card says that the training data's terms also apply
# First line of the body of every card written here: `tamer push` rewrites such a card (new results appear); a card
# without it is the user's own and is uploaded as it is.
MARKER = "<!-- tamer-hf card, from training_summary.json and eval/*/results.json: delete this line to keep edits -->"
TASK_NAME = "Zero-shot ECG classification"
METRIC_NAME = "macro-AUC"  # the mean of the per-class ROC AUCs over the classes with positives and negatives
SOFTWARE_CITATION = """@software{tamer_hf,
  title = {tamer-hf: ECG-report pre-training and zero-shot 12-lead ECG diagnosis for the Hugging Face ecosystem},
  version = {%s},
  license = {Apache-2.0}
}"""


def evaluation_results(folder: str | os.PathLike) -> list[dict]:
    """The `results.json` of every `tamer eval` run saved under `folder/eval/`, in path order."""
    paths = sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)), "eval", "**", "results.json"),
                             recursive=True))
    return [json.load(open(path, encoding="utf-8")) for path in paths]


def _dataset_id(name: str) -> str:
    """A Hub dataset id as it is; a local folder or file by its name; a description by its first word."""
    if os.path.exists(name):
        return os.path.basename(os.path.normpath(name)) or name
    return name.split()[0] if name.split() else "unknown"


def eval_results(summary: dict, results: list[dict]) -> list:
    """`huggingface_hub.EvalResult`s (the card's `model-index`): the training run's held-out test split, then each
    `tamer eval` result."""
    from huggingface_hub import EvalResult

    entries = []
    test = summary.get("test")
    if test and test.get("macro_auc") is not None:
        dataset = summary.get("dataset") or "unknown"
        entries.append(EvalResult(task_type=TASK, task_name=TASK_NAME, dataset_type=_dataset_id(dataset),
                                  dataset_name=f"{dataset}, held-out split of the training data",
                                  dataset_split="test", metric_type="roc_auc", metric_name=METRIC_NAME,
                                  metric_value=test["macro_auc"]))
    for result in results:
        record = result.get("dataset") or {}
        source = record.get("source") or _dataset_id(record.get("path") or "unknown")
        entries.append(EvalResult(task_type=TASK, task_name=TASK_NAME, dataset_type=source,
                                  dataset_name=f"{source} {result.get('label_set') or ''}".strip(),
                                  dataset_config=result.get("label_set"), dataset_split=result.get("split"),
                                  metric_type="roc_auc", metric_name=METRIC_NAME,
                                  metric_value=result["zero_shot"]["macro_auc"]))
    return entries


def build_model_card(summary: dict, results: list[dict] = (), repo_id: str | None = None, license: str = LICENSE):
    """The card as a `huggingface_hub.ModelCard` (see `write_model_card`)."""
    from huggingface_hub import ModelCard, ModelCardData

    from . import __version__

    dataset = summary.get("dataset") or "unknown"
    datasets = [dataset] if "/" in dataset and not os.path.exists(dataset) else None  # only Hub ids belong here
    model_type = summary.get("model_type") or "unknown"
    model_id = repo_id or "path/to/this/folder"
    entries = eval_results(summary, list(results))
    card_data = ModelCardData(
        model_name=(repo_id or model_type).split("/")[-1],
        license=license,
        library_name="transformers",
        pipeline_tag="other",  # "zero-shot-ecg-classification" is not a Hub task id: it is in the tags
        tags=[model_type if summary.get("model_type") else "ecg-report-model", *TAGS],
        datasets=datasets,
        metrics=["roc_auc"],
        base_model=summary.get("text_encoder") if "/" in str(summary.get("text_encoder", "")) else None,
        eval_results=entries or None,
    )
    family_line = summary.get("family") or f"An ECG-report model of family `{model_type}`"
    family_name = family_line.split(":")[0] if summary.get("family") else model_type
    prompting = summary.get("zero_shot_prompts") or {}
    template = prompting.get("template", "{}")
    template_argument = "" if template == "{}" else f", hypothesis_template={template!r}"
    prompt_kind = "full clinical description" if prompting.get("prompts") == "description" else "clinical name"
    content = f"""---
{card_data.to_yaml()}
---
{MARKER}

# {family_name} zero-shot 12-lead ECG model

{family_line}, trained with `tamer-hf` (`{PROGRAM} pretrain --model_type {model_type}`). It embeds a 10 s, 500 Hz,
12-lead ECG and free-text label prompts in one space; the zero-shot score of a label is their cosine similarity.

## Usage

```python
import tamer_hf  # registers the classes and the pipeline task
classifier = tamer_hf.pipeline("zero-shot-ecg-classification", model="{model_id}")
classifier(ecg_array, sampling_rate=500, candidate_labels=["atrial fibrillation", "sinus rhythm"]{template_argument})
```

Without `tamer-hf` installed (the modeling and pipeline code travel with the checkpoint):

```python
from transformers import AutoModel, AutoProcessor, pipeline
model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{model_id}", trust_remote_code=True)
classifier = pipeline("zero-shot-ecg-classification", model="{model_id}", trust_remote_code=True)
```

## Training

- Data: {dataset}; {summary.get('train_records', '?')} training records, {summary.get('unique_reports', '?')} unique
  reports.
- Model preset: {summary.get('model_preset', '?')}; report encoder: {summary.get('text_encoder', '?')}.
- Loss terms: {', '.join(summary.get('loss_terms', [])) or '?'}.
- Optimizer steps: {summary.get('completed_steps', '?')} on {summary.get('num_processes', '?')} process(es).

## Results

{_results_text(summary, list(results), template, prompt_kind)}

## Limitations

A zero-shot ECG model is a research tool, not a medical device. Scores are cosine similarities, not calibrated
probabilities; check them on labelled data from your own population before any use.

## License

The code is {license}. The weights were learnt from {dataset}: that data's licence and terms of use (e.g. PhysioNet's
credentialed-access agreement for MIMIC-IV-ECG) also bind their use and redistribution.

## Citation

The method: {family_line}.

The implementation:

```bibtex
{SOFTWARE_CITATION % __version__}
```
"""
    return ModelCard(content)


def _results_text(summary: dict, results: list[dict], template: str, prompt_kind: str) -> str:
    test = summary.get("test") or {}
    parts = []
    if test:
        rows = "\n".join(f"| {name} | {'excluded' if auc is None else f'{auc:.4f}'} |"
                         for name, auc in test.get("per_class", {}).items())
        parts.append(f"Zero-shot macro-AUC on {test['num_records']} held-out records: **{test['macro_auc']:.4f}** "
                     f"(cosine between the ECG embedding and each label's {prompt_kind}, written through the "
                     f"template `{template}`).\n\n| Label | AUC |\n|---|---|\n{rows}")
    if results:
        rows = "\n".join(f"| {(r.get('dataset') or {}).get('source') or '?'} | {r.get('label_set')} | {r.get('split')} "
                         f"| {r.get('num_records')} | {r['zero_shot']['macro_auc']:.4f} |" for r in results)
        parts.append(f"`{PROGRAM} eval` (zero-shot, raw cosine scores):\n\n| Dataset | Label set | Split | Records | "
                     f"Macro-AUC |\n|---|---|---|---|---|\n{rows}")
    return "\n\n".join(parts) or "Not evaluated (no labelled test split)."


def write_model_card(folder: str | os.PathLike, summary: dict | None = None, repo_id: str | None = None,
                     license: str = LICENSE) -> str:
    """Write `folder/README.md` from the training summary (`training_summary.json` when `summary` is None) and the
    `tamer eval` results saved under `folder/eval/`. Returns its path.

    Works offline: `ModelCard.validate()` needs the Hub, so it is not called (hf_conventions §7).
    """
    if summary is None:
        path = os.path.join(folder, "training_summary.json")
        summary = json.load(open(path, encoding="utf-8")) if os.path.isfile(path) else {}
    card = build_model_card(summary, evaluation_results(folder), repo_id=repo_id, license=license)
    path = os.path.join(folder, "README.md")
    card.save(path)
    return path


def written_here(card_path: str | os.PathLike) -> bool:
    """Whether the card at `card_path` was written by `write_model_card` (and not edited to keep it)."""
    with open(card_path, encoding="utf-8") as handle:
        return MARKER in handle.read()


__all__ = ["write_model_card", "build_model_card", "eval_results", "evaluation_results", "written_here", "TAGS",
           "LICENSE", "MARKER"]

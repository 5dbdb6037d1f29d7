"""`ZeroShotECGClassificationPipeline`: score a 12-lead ECG against free-text candidate labels with a model of any
family (it uses only `get_ecg_features`, `get_text_features` and `config.zero_shot_temperature`).

Travels to the Hub as remote code (listed in `config.custom_pipelines`), so it depends only on torch, numpy and
transformers and imports its siblings with `from .x import`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .ecg_validation import is_dataframe, wfdb_record_name

TASK = "zero-shot-ecg-classification"
TEXT_CACHE_SIZE = 16  # distinct prompt lists whose embeddings are kept (one per label set in use)
MAX_PROMPT_TOKENS = 256  # MERL tokenises label prompts with max_length 256 (reference/paper_code.md §2.5)
WINDOW_AGGREGATIONS = ("mean", "max")
PROMPT_STYLES = ("name", "description")  # a label's prompt: its clinical name, or its whole clinical description


class ZeroShotECGClassificationPipeline(ChunkPipeline):
    """Zero-shot ECG classification: the cosine between the ECG embedding z^e and each label prompt's embedding.

    ```python
    >>> import tamer_hf
    >>> classifier = tamer_hf.pipeline("zero-shot-ecg-classification", model="org/tamer-ecg")
    >>> classifier("record.hea", candidate_labels=["atrial fibrillation", "sinus rhythm"])
    [{'label': 'atrial fibrillation', 'score': 0.93, 'quality': {'ok': True, 'issues': []}},
     {'label': 'sinus rhythm', 'score': 0.07, 'quality': {'ok': True, 'issues': []}}]
    ```

    Every entry carries its record's `quality`: `ok` is False when the feature extractor flagged the record (flat,
    all-zero, clipped, amplitude implausible for mV, outlying samples, NaN/Inf repaired, padded to 10 s, a long
    record's tail padded or left out, windows with such issues), and `issues` says what, in the words of the
    `ECGQualityWarning` it also raised; with `strict=True` such a record is an error instead. A confident score on a
    record with `ok: False` is not to be trusted.

    Long records are scored window by window: the model sees 10 s (`feature_extractor.num_samples` at its rate), so a
    longer record is cut into consecutive 10 s windows from its start (`TamerFeatureExtractor.windows`: a final part of
    at least 5 s is zero-padded to a window, a shorter one is left out, each with a warning), each window is scored as
    a 10 s record would be, and each label's score is the mean (`window_aggregation="mean"`, default) or the maximum
    (`"max"`: "present somewhere", e.g. a paroxysmal rhythm) of its window scores. `return_window_scores=True` adds
    `window_scores`, `window_starts` (seconds) and `window_quality` to every entry. Windows are read from the record
    one at a time (a WFDB file is never loaded whole) and this is a `ChunkPipeline`: `batch_size=` runs the model on
    that many windows at once, memory stays bounded by it.

    Scores:
    - `multi_label=False` (default): the labels compete; `softmax(cosine / config.zero_shot_temperature)` over the
      candidate labels, so the scores sum to 1 (as zero-shot image/audio classification).
    - `multi_label=True`: each label is scored on its own, in [0, 1]: a two-way softmax at the same temperature between
      the label's prompt and its negation (`negative_template`, default "no {}"), i.e.
      `sigmoid((cos(ecg, prompt) - cos(ecg, negated prompt)) / temperature)`. It says whether the ECG sits closer to
      the finding than to its absence in the embedding space; it is **not a calibrated probability**, and the text
      encoder's handling of negation limits it. Choose thresholds on labelled data.
    - `function_to_apply="none"` returns the raw cosines, which is what AUCs are computed on
      (`examples/zero_shot_eval.py`).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._text_embeds_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def __call__(self, inputs: Any, **kwargs: Any):
        """Classify one ECG or a list of ECGs.

        Args:
            inputs: one ECG as a 2-D numpy array / torch tensor (leads × time or time × leads) with `sampling_rate=`,
                a pandas DataFrame (time × leads, columns named by lead) with `sampling_rate=`, a WFDB record path
                (`.hea`; the rate is read from the header), or a dict with `signal`, `sampling_rate` and optionally
                `lead_names`; or a non-empty **list** of those (then a list of results is returned; pass
                `batch_size=` to run the model on several at once).
            candidate_labels (`list[str]` or `str`): the labels to score (shared by every ECG of the call); a string is
                split at commas, as in transformers' zero-shot pipelines. One label needs `multi_label=True` (a
                softmax over one label is always 1.0).
            hypothesis_template (`str`, defaults to `"{}"`): formats each label's text into the prompt.
            label_descriptions (`dict[str, str]`, optional): label → clinical description (a non-empty string); the
                description (through the template) is what gets encoded, the label is what gets returned (see
                `tamer_hf.evaluation.load_label_descriptions`); labels without one are encoded as they are. Keys
                that match none of the candidate labels are an error.
            multi_label (`bool`, defaults to `False`): independent per-label scores instead of a softmax over labels.
            negative_template (`str`, defaults to `"no {}"`): the negated prompt used when `multi_label=True`.
            function_to_apply (`str`, optional): `"none"` returns the raw cosines instead of probabilities.
            top_k (`int`, optional): keep only the best `top_k` labels.
            sampling_rate (`float`): Hz of array inputs. lead_names (`list[str]`): their leads, in order.
            strict (`bool`, defaults to `False`): a record with a quality issue is a `ValueError` instead.
            window_aggregation (`str`, defaults to `"mean"`): how a record longer than 10 s gets one score per label
                from its windows' scores: `"mean"` or `"max"`. The window scores are the scores above (softmax,
                sigmoid or raw cosine), so with `"max"` softmax scores no longer sum to 1.
            return_window_scores (`bool`, defaults to `False`): add `window_scores` (one score per window),
                `window_starts` (seconds from the record's start) and `window_quality` (each window's `quality`) to
                every entry; a record up to 10 s has one window.
            batch_size (`int`, optional): windows (of one or several records) given to the model at once.

        Returns:
            `[{"label": str, "score": float, "quality": {"ok": bool, "issues": [str]}}, ...]` sorted by decreasing
            score, or a list of such lists for a list input.
        """
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError("No ECG given: the list of records is empty.")
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, label_descriptions=None,
                             multi_label=None, negative_template=None, function_to_apply=None, top_k=None,
                             sampling_rate=None, lead_names=None, strict=None, window_aggregation=None,
                             return_window_scores=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unexpected argument(s) for {TASK}: {sorted(kwargs)}.")
        preprocess_params = {"sampling_rate": sampling_rate, "lead_names": lead_names}
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = _check_labels(candidate_labels)
        if hypothesis_template is not None:
            preprocess_params["hypothesis_template"] = hypothesis_template
        if label_descriptions is not None:
            preprocess_params["label_descriptions"] = _check_descriptions(label_descriptions)
        if multi_label is not None:
            if not isinstance(multi_label, bool):  # bool("false") is True
                raise ValueError(f"multi_label must be True or False, got {multi_label!r}.")
            preprocess_params["multi_label"] = multi_label
        if negative_template is not None:
            preprocess_params["negative_template"] = negative_template
        if strict is not None:
            if not isinstance(strict, bool):
                raise ValueError(f"strict must be True or False, got {strict!r}.")
            preprocess_params["strict"] = strict
        postprocess_params = {}
        if multi_label is not None:
            postprocess_params["multi_label"] = multi_label
        if function_to_apply is not None:
            if function_to_apply not in ("none", "default"):
                raise ValueError(f"function_to_apply must be 'none' or 'default', got {function_to_apply!r}.")
            postprocess_params["function_to_apply"] = function_to_apply
        if top_k is not None:
            if not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
            postprocess_params["top_k"] = top_k
        if window_aggregation is not None:
            if window_aggregation not in WINDOW_AGGREGATIONS:
                raise ValueError(f"window_aggregation must be one of {WINDOW_AGGREGATIONS}, got "
                                 f"{window_aggregation!r}.")
            postprocess_params["window_aggregation"] = window_aggregation
        if return_window_scores is not None:
            if not isinstance(return_window_scores, bool):
                raise ValueError(f"return_window_scores must be True or False, got {return_window_scores!r}.")
            postprocess_params["return_window_scores"] = return_window_scores
        return preprocess_params, {}, postprocess_params

    def preprocess(self, inputs, candidate_labels=None, hypothesis_template="{}", label_descriptions=None,
                   multi_label=False, negative_template="no {}", sampling_rate=None, lead_names=None, strict=False):
        if candidate_labels is None:
            raise ValueError("candidate_labels is required, e.g. candidate_labels=['atrial fibrillation', 'sinus rhythm'].")
        if len(candidate_labels) == 1 and not multi_label:
            raise ValueError(
                f"One candidate label ({candidate_labels[0]!r}) always scores 1.0 under the softmax over labels; pass "
                "multi_label=True to score it on its own, or give at least two labels."
            )
        if label_descriptions and not set(label_descriptions) & set(candidate_labels):
            raise ValueError(f"None of the label_descriptions keys {sorted(label_descriptions)} is a candidate label "
                             f"({candidate_labels}); the keys must be the labels themselves.")
        prompts = make_prompts(candidate_labels, hypothesis_template, label_descriptions)
        if multi_label:
            check_template(negative_template, "negative_template")
        negative_prompts = [negative_template.format(prompt) for prompt in prompts] if multi_label else []
        windows = self.feature_extractor.windows(_check_input(inputs), sampling_rate=sampling_rate,
                                                 lead_names=lead_names, strict=strict)
        last = len(windows) - 1
        for index, window in enumerate(windows):
            yield {
                "input_values": torch.from_numpy(window.input_values[None]).to(self.dtype),  # (1, 12, 5000)
                "candidate_labels": list(candidate_labels),
                "prompts": prompts,
                "negative_prompts": negative_prompts,
                "window_start": window.start_s,
                "window_quality": window.quality,
                "quality": windows.quality if index == last else None,  # complete once the last window is prepared
                "is_last": index == last,
            }

    def _forward(self, model_inputs):
        candidate_labels = model_inputs["candidate_labels"]
        prompts, negative_prompts = model_inputs["prompts"], model_inputs["negative_prompts"]
        if candidate_labels and not isinstance(candidate_labels[0], str):  # batched: one list per ECG
            if any(labels != candidate_labels[0] for labels in candidate_labels):
                raise ValueError("All ECGs of one batched call must share candidate_labels.")
            prompts, negative_prompts = prompts[0], negative_prompts[0]
        ecg_embeds = self.model.get_ecg_features(input_values=model_inputs["input_values"])  # (B, D)
        cosine = ecg_embeds @ self._text_embeds(prompts).T  # (B, C)
        outputs = {"cosine": cosine}  # first: transformers reads the batch size from the first entry
        if negative_prompts:
            outputs["negative_cosine"] = ecg_embeds @ self._text_embeds(negative_prompts).T  # (B, C)
        for key in ("candidate_labels", "window_start", "window_quality", "quality", "is_last"):
            outputs[key] = model_inputs[key]
        return outputs

    def postprocess(self, model_outputs, multi_label=False, function_to_apply="default", top_k=None,
                    window_aggregation="mean", return_window_scores=False):
        """`model_outputs`: one entry per window of the record, in order."""
        cosine = torch.cat([output["cosine"] for output in model_outputs]).float()  # (W, C)
        temperature = self.model.config.zero_shot_temperature
        if function_to_apply == "none":
            window_scores = cosine
        elif multi_label:
            negative_cosine = torch.cat([output["negative_cosine"] for output in model_outputs]).float()  # (W, C)
            window_scores = torch.sigmoid((cosine - negative_cosine) / temperature)
        else:
            window_scores = torch.softmax(cosine / temperature, dim=-1)
        if window_aggregation == "max":
            scores = window_scores.amax(dim=0)  # (C,)
        else:
            scores = window_scores.double().mean(dim=0)  # (C,); float64 so that 8640 windows add up exactly enough
        labels, quality = model_outputs[0]["candidate_labels"], model_outputs[-1]["quality"]
        ranked = sorted(zip(scores.tolist(), range(len(labels))), key=lambda pair: -pair[0])
        results = [{"label": labels[column], "score": score, "quality": quality} for score, column in ranked[:top_k]]
        if return_window_scores:
            starts = [output["window_start"] for output in model_outputs]
            window_quality = [output["window_quality"] for output in model_outputs]
            for entry, (_, column) in zip(results, ranked):
                entry.update(window_scores=window_scores[:, column].tolist(), window_starts=starts,
                             window_quality=window_quality)
        return results

    def _text_embeds(self, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings (C, D), cached per prompt list: the frozen text encoder gives the same answer every call,
        and re-encoding the labels for every ECG would dominate the cost of a call."""
        key = tuple(prompts)
        if key not in self._text_embeds_cache:
            if len(self._text_embeds_cache) >= TEXT_CACHE_SIZE:
                self._text_embeds_cache.pop(next(iter(self._text_embeds_cache)))
            tokens = self.tokenizer(
                prompts, padding=True, truncation=True, max_length=prompt_max_length(self.model.config),
                return_tensors="pt",
            ).to(self.device)
            self._text_embeds_cache[key] = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        return self._text_embeds_cache[key]


def _check_labels(candidate_labels) -> list[str]:
    if isinstance(candidate_labels, str):  # "a, b" -> ["a", "b"], as transformers' zero-shot pipelines
        candidate_labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
    if not isinstance(candidate_labels, (list, tuple)):
        raise ValueError(f"candidate_labels must be a list of strings, got {type(candidate_labels).__name__}.")
    candidate_labels = list(candidate_labels)
    if not candidate_labels:
        raise ValueError("candidate_labels is empty; give at least one label.")
    if not all(isinstance(label, str) and label.strip() for label in candidate_labels):
        raise ValueError(f"candidate_labels must be non-empty strings, got {candidate_labels!r}.")
    if len(set(candidate_labels)) != len(candidate_labels):
        raise ValueError(f"candidate_labels has duplicates: {candidate_labels!r}.")
    return candidate_labels


def _check_descriptions(label_descriptions) -> dict[str, str]:
    """label -> description; a description that is not a non-empty string would be encoded as "none", "123" or a
    list's repr."""
    if not isinstance(label_descriptions, dict):
        raise ValueError(f"label_descriptions must be a dict {{label: description}}, got "
                         f"{type(label_descriptions).__name__}.")
    bad = {label: text for label, text in label_descriptions.items() if not (isinstance(text, str) and text.strip())}
    if bad:
        raise ValueError(f"label_descriptions must map each label to a non-empty string; got {bad!r}.")
    return dict(label_descriptions)


def _check_input(inputs):
    """Reject inputs the feature extractor would misread; files must exist and be readable."""
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        header = wfdb_record_name(path) + ".hea"
        if not os.path.isfile(header) or not os.access(header, os.R_OK):
            raise FileNotFoundError(f"Cannot read the WFDB header {header!r} (missing or unreadable).")
        return path
    if isinstance(inputs, (dict, np.ndarray, torch.Tensor)) or is_dataframe(inputs):
        return inputs
    raise TypeError(
        f"An ECG must be a numpy array, a torch tensor, a DataFrame, a WFDB .hea path or a dict with 'signal' and "
        f"'sampling_rate', got {type(inputs).__name__}."
    )



def check_template(template, name: str = "hypothesis_template") -> str:
    """A prompt template must hold exactly one empty `{}` field: anything else would fail deep inside `str.format`
    or, without a field, encode the same text for every label."""
    if not isinstance(template, str):
        raise ValueError(f"{name} must be a string with one '{{}}', got {type(template).__name__}.")
    try:
        filled = [template.format(marker) for marker in ("\x00", "\x01")]
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError(f"{name} {template!r} is not a template with one '{{}}' ({error!r}).") from None
    if filled[0] == filled[1] or filled[0].count("\x00") != 1:
        raise ValueError(f"{name} {template!r} must contain '{{}}' exactly once, where the label goes.")
    return template


def make_prompts(candidate_labels, hypothesis_template="{}", label_descriptions=None) -> list[str]:
    """The text encoded for each label: its description (else the label) through the template, lower-cased."""
    # Lower-cased because the pre-training reports are lower-cased (MERL preprocessing, paper_code.md §2.5).
    check_template(hypothesis_template)
    descriptions = label_descriptions or {}
    return [hypothesis_template.format(descriptions.get(label, label)).lower() for label in candidate_labels]


def prompt_max_length(config) -> int:
    """Prompts are truncated like MERL's (256 tokens), and never beyond the text encoder's learned positions (T5's
    relative positions have no such limit)."""
    return min(MAX_PROMPT_TOKENS, getattr(config.text_config, "max_position_embeddings", None) or MAX_PROMPT_TOKENS)


def pipeline_listing() -> dict:
    """The `custom_pipelines` entry of config.json that makes transformers import this file's pipeline from a folder
    (`"pt"` must name Auto classes: transformers#33272)."""
    impl = f"{__name__.rsplit('.', 1)[-1]}.{ZeroShotECGClassificationPipeline.__name__}"
    return {TASK: {"impl": impl, "pt": ["AutoModel"], "type": "multimodal"}}


class ZeroShotPipelineConfigMixin:
    """Config side of serving the task from any saved folder; every family's config inherits it.

    - Saved: `to_dict` writes `custom_pipelines` (`pipeline_listing()`) whenever the saved model is the family's
      `AutoModel` class, the one the pipeline loads, so every `save_pretrained` / `push_to_hub` folder serves
      `pipeline(TASK, model=folder, trust_remote_code=True)` where tamer_hf is absent, and `pipeline(model=folder,
      trust_remote_code=True)` infers the task. This file travels with the config, which imports it. A classification
      head's folder lists nothing: it has no report encoder.
    - In memory: transformers checks `config.custom_pipelines` before its pipeline registry and then insists on
      trust_remote_code (hf_conventions.md pitfall 7). So the config classes that this process registered with
      `AutoConfig` (the installed tamer_hf) list nothing, and `transformers.pipeline(TASK, model=folder)` uses the
      installed pipeline; a copy loaded as remote code lists what the file lists, which is how transformers finds
      the pipeline file (and a head's folder, listing nothing, is not taken for a zero-shot model).
    - How the checkpoint was validated: `zero_shot_template` (a template with one `{}`) and `zero_shot_prompts`
      (`"name"`: each label's clinical name, `"description"`: its whole packaged description), written by `tamer
      pretrain` (its `--zero_shot_template` / `--zero_shot_prompts`); `tamer eval` defaults to them. `None` (a folder
      saved otherwise): not recorded, and not written to config.json.
    """

    def __post_init__(self, **kwargs):
        listed = kwargs.pop("custom_pipelines", None) or {}  # what the file lists (to_dict writes it afresh)
        self.zero_shot_template = kwargs.pop("zero_shot_template", None)
        self.zero_shot_prompts = kwargs.pop("zero_shot_prompts", None)
        if self.zero_shot_template is not None:
            check_template(self.zero_shot_template, f"{type(self).__name__}.zero_shot_template")
        if self.zero_shot_prompts not in (None, *PROMPT_STYLES):
            raise ValueError(f"{type(self).__name__}.zero_shot_prompts must be one of {PROMPT_STYLES} or None, got "
                             f"{self.zero_shot_prompts!r}.")
        super().__post_init__(**kwargs)
        self.custom_pipelines = {} if _installed_here(self) else listed

    def to_dict(self) -> dict:
        output = super().to_dict()
        output.pop("custom_pipelines", None)
        auto_model = (output.get("auto_map") or {}).get("AutoModel", "").rsplit(".", 1)[-1]
        if auto_model and auto_model in (output.get("architectures") or []):
            output["custom_pipelines"] = pipeline_listing()
        return output


def _installed_here(config) -> bool:
    """Whether `config`'s class is the one registered with AutoConfig in this process and the task is registered."""
    from transformers import CONFIG_MAPPING

    try:
        registered = CONFIG_MAPPING[config.model_type] is type(config)
    except KeyError:  # not registered: a remote-code copy where tamer_hf is absent
        return False
    return registered and TASK in PIPELINE_REGISTRY.get_supported_tasks()


def register_pipeline() -> None:
    """Register the task with transformers' pipeline registry (called by `import tamer_hf`)."""
    if TASK in PIPELINE_REGISTRY.get_supported_tasks():
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ZeroShotECGClassificationPipeline, pt_model=AutoModel, type="multimodal"
    )


__all__ = ["ZeroShotECGClassificationPipeline", "ZeroShotPipelineConfigMixin", "pipeline_listing", "check_template",
           "make_prompts", "prompt_max_length", "register_pipeline", "TASK", "WINDOW_AGGREGATIONS"]

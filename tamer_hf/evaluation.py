"""Zero-shot evaluation of TAMER: macro-AUC with bootstrap CIs, domain shift, linear probing, JSON/Markdown reports.

Everything here works on plain arrays (`y_true` multi-hot (N, C), `scores` (N, C), embeddings (N, D)), so the metric
runs offline and is independent of the model. The AUC is `sklearn.metrics.roc_auc_score` per class (hf_conventions
§6: evaluate needs the network and sklearn's macro average turns NaN when a class has one label value).
"""

from __future__ import annotations

import json
import os
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from .modeling.pipeline_tamer import make_prompts, prompt_max_length  # noqa: F401  (one prompt recipe for both)

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LINEAR_PROBE_FRACTIONS = (0.01, 0.1, 1.0)  # MERL/TAMER linear-probing protocol: 1 %, 10 %, 100 % of the train split


# ----------------------------------------------------------------------------------------------------------------------
# Packaged data files


def load_label_descriptions(label_set: str | None = None, path: str | os.PathLike | None = None) -> dict[str, str]:
    """Label → clinical description.

    `path` reads a user JSON instead of the packaged file: either flat `{label: text}` (e.g. MERL's CKEPE_prompt.json)
    or sectioned `{label_set: {label: text}}` like ours. `label_set` picks a section (`ptbxl_super`, `ptbxl_sub`,
    `ptbxl_form`, `ptbxl_rhythm`, `cpsc2018`, `csn`, `code_test`); a flat file ignores it.
    """
    table = _read_json(path, "label_descriptions.json")
    table = {key: value for key, value in table.items() if not key.startswith("_")}
    if all(isinstance(value, str) for value in table.values()):
        return table
    if label_set is None:
        raise ValueError(f"This description file has sections {sorted(table)}; pass label_set= to pick one.")
    if label_set not in table:
        raise ValueError(f"Unknown label_set {label_set!r}; available: {sorted(table)}.")
    return dict(table[label_set])


def load_domain_mapping(pair: str, path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Source class → target columns for `pair` = "SOURCE->TARGET" (e.g. "ptbxl_super->csn")."""
    table = _read_json(path, "domain_mapping.json")
    if pair not in table or pair.startswith("_"):
        available = sorted(key for key in table if not key.startswith("_"))
        raise ValueError(f"No domain mapping {pair!r}; available: {available}.")
    return {source: list(targets) for source, targets in table[pair].items()}


def _read_json(path, packaged_name: str) -> dict:
    if path is None:
        path = os.path.join(DATA_DIR, packaged_name)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def label_set_of(dataset, task: str | None = None) -> str | None:
    """The description section for a dataset written by `datasets_scripts` (`ptbxl` + task -> `ptbxl_super`)."""
    from datasets_scripts.common import dataset_metadata

    source = dataset_metadata(dataset).get("tamer_source")
    if source == "ptbxl":
        return f"ptbxl_{task or 'super'}"
    return source


# ----------------------------------------------------------------------------------------------------------------------
# Embeddings (the model side of the zero-shot score)


@torch.no_grad()
def embed_ecgs(model, feature_extractor, ecgs, sampling_rate: int = 500, batch_size: int = 64) -> np.ndarray:
    """z^e for every record: (N, D). `ecgs` is an array (N, 12, T) or a `datasets.Dataset` with an `ecg` column."""
    if hasattr(ecgs, "with_format"):
        ecgs = ecgs.with_format("numpy")
    device = next(model.parameters()).device
    embeds = []
    for start in range(0, len(ecgs), batch_size):
        batch = ecgs[start:start + batch_size]
        batch = np.asarray(batch["ecg"] if isinstance(batch, dict) else batch, dtype=np.float32)  # (b, 12, T)
        input_values = feature_extractor(batch, sampling_rate=sampling_rate, return_tensors="pt")["input_values"]
        embeds.append(model.get_ecg_features(input_values=input_values.to(device)).float().cpu().numpy())
    return np.concatenate(embeds)


@torch.no_grad()
def embed_prompts(model, tokenizer, prompts: list[str]) -> np.ndarray:
    """Prompt embeddings (C, D), tokenised exactly as the pipeline does."""
    max_length = prompt_max_length(model.config)
    tokens = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    tokens = tokens.to(next(model.parameters()).device)
    text = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return text.float().cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------------
# Metrics


def per_class_auc(y_true, scores, label_names: list[str]) -> dict:
    """Per-class ROC-AUC and their macro mean over the classes that have both label values.

    Returns `{"per_class": {name: auc | None}, "macro_auc": float, "excluded": [names], "n_positive": {name: int}}`;
    a class with only positives or only negatives gets `None` and is listed in `excluded` (never silently averaged).
    """
    y_true, scores = _check_pair(y_true, scores, label_names)
    per_class, excluded = {}, []
    for index, name in enumerate(label_names):
        column = y_true[:, index]
        if column.min() == column.max():
            per_class[name] = None
            excluded.append(name)
        else:
            per_class[name] = float(roc_auc_score(column, scores[:, index]))
    valid = [auc for auc in per_class.values() if auc is not None]
    return {
        "per_class": per_class,
        "macro_auc": float(np.mean(valid)) if valid else float("nan"),
        "excluded": excluded,
        "n_positive": {name: int(y_true[:, i].sum()) for i, name in enumerate(label_names)},
    }


def bootstrap_macro_auc(y_true, scores, num_samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap CI of the macro-AUC: resample records with replacement, average the classes that keep
    both label values in that resample."""
    y_true, scores = _check_pair(y_true, scores)
    rng = np.random.default_rng(seed)
    num_records = len(y_true)
    estimates = []
    for _ in range(num_samples):
        rows = rng.integers(0, num_records, num_records)
        estimate = _macro_auc_or_none(y_true[rows], scores[rows])
        if estimate is not None:
            estimates.append(estimate)
    if not estimates:
        return {"low": float("nan"), "high": float("nan"), "num_samples": 0, "confidence": confidence}
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return {"low": float(low), "high": float(high), "num_samples": len(estimates), "confidence": confidence}


def _macro_auc_or_none(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    aucs = [
        roc_auc_score(y_true[:, i], scores[:, i])
        for i in range(y_true.shape[1])
        if y_true[:, i].min() != y_true[:, i].max()
    ]
    return float(np.mean(aucs)) if aucs else None


def evaluate_scores(y_true, scores, label_names: list[str], num_bootstrap: int = 1000, seed: int = 0) -> dict:
    """`per_class_auc` plus the bootstrap CI (`"ci95"`)."""
    result = per_class_auc(y_true, scores, label_names)
    kept = [i for i, name in enumerate(label_names) if name not in result["excluded"]]
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if num_bootstrap > 0 and kept:
        result["ci95"] = bootstrap_macro_auc(y_true[:, kept], scores[:, kept], num_bootstrap, 0.95, seed)
    return result


def _check_pair(y_true, scores, label_names=None) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"y_true {y_true.shape} and scores {scores.shape} must both be (num_records, num_classes).")
    if label_names is not None and len(label_names) != y_true.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {y_true.shape[1]} label columns.")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf.")
    return y_true, scores


def cosine_scores(ecg_embeds, text_embeds) -> np.ndarray:
    """Zero-shot score matrix (N, C): cosine of each ECG embedding with each prompt embedding (raw, for AUC)."""
    ecg = np.asarray(ecg_embeds, dtype=np.float64)
    text = np.asarray(text_embeds, dtype=np.float64)
    ecg = ecg / np.linalg.norm(ecg, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    return ecg @ text.T


# ----------------------------------------------------------------------------------------------------------------------
# Domain shift


def map_target_labels(target_labels, target_names: list[str], mapping: dict[str, list[str]]):
    """Target-set labels expressed in the source classes: column s = OR of the target columns mapped from s.

    Returns `(labels (N, S) int8, source_names)`; source classes are kept in the mapping's order.
    """
    target_labels = np.asarray(target_labels)
    position = {name: i for i, name in enumerate(target_names)}
    missing = sorted({t for targets in mapping.values() for t in targets if t not in position})
    if missing:
        raise ValueError(f"Domain mapping names target classes {missing} that the target set lacks ({target_names}).")
    source_names = list(mapping)
    columns = [target_labels[:, [position[t] for t in mapping[s]]].max(axis=1) for s in source_names]
    return np.stack(columns, axis=1).astype(np.int8), source_names


# ----------------------------------------------------------------------------------------------------------------------
# Linear probing


def subsample_indices(num_records: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded random subset of `fraction` of the rows (at least one), sorted."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    size = max(1, int(round(num_records * fraction)))
    return np.sort(np.random.default_rng(seed).choice(num_records, size=size, replace=False))


def linear_probe(train_embeds, train_labels, test_embeds, test_labels, label_names: list[str],
                 fractions=LINEAR_PROBE_FRACTIONS, seed: int = 0, num_bootstrap: int = 0) -> dict:
    """One-vs-rest logistic regression on frozen ECG embeddings, trained on each fraction of the train split.

    Classes whose training subset has a single label value cannot be fitted: they are scored as a constant and
    reported in `"unfitted"` (their test AUC is then 0.5, which is what a probe that learnt nothing achieves).
    Returns `{"1%": result, "10%": result, "100%": result}` with the `evaluate_scores` layout.
    """
    train_embeds, test_embeds = np.asarray(train_embeds), np.asarray(test_embeds)
    train_labels = np.asarray(train_labels)
    results = {}
    for fraction in fractions:
        rows = subsample_indices(len(train_embeds), fraction, seed)
        test_scores, unfitted = _fit_probe(train_embeds[rows], train_labels[rows], test_embeds, seed)
        result = evaluate_scores(test_labels, test_scores, label_names, num_bootstrap, seed)
        result["unfitted"] = [label_names[i] for i in unfitted]
        result["num_train"] = int(len(rows))
        results[_fraction_key(fraction)] = result
    return results


def _fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, seed: int):
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    scores = np.zeros((len(test_x), train_y.shape[1]))
    unfitted = []
    for index in range(train_y.shape[1]):
        column = train_y[:, index]
        if column.min() == column.max():
            unfitted.append(index)
            continue
        classifier = LogisticRegression(max_iter=1000, random_state=seed).fit(train_x, column)
        scores[:, index] = classifier.decision_function(test_x)
    return scores, unfitted


def _fraction_key(fraction: float) -> str:
    return f"{fraction * 100:g}%"


# ----------------------------------------------------------------------------------------------------------------------
# Reports


def save_results(results: dict, output_dir: str | os.PathLike) -> tuple[str, str]:
    """Write `results.json` and `results.md` (see `results_to_markdown`) into `output_dir`; return both paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "results.json")
    markdown_path = os.path.join(output_dir, "results.md")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, allow_nan=True)
    with open(markdown_path, "w", encoding="utf-8") as handle:
        handle.write(results_to_markdown(results))
    return json_path, markdown_path


def results_to_markdown(results: dict) -> str:
    """Tables laid out like TAMER Tables 1–3 (Method | Training ratio | Zero-shot target | Domain shift targets),
    then MERL-style linear probing (1 % / 10 % / 100 %), then per-class AUCs. AUCs are shown ×100."""
    lines = [_summary_table(results)]
    if results.get("linear_probe"):
        lines.append(_linear_probe_table(results))
    lines.append(_per_class_table("Zero-shot per-class AUC", results["zero_shot"]))
    for target, result in results.get("domain_shift", {}).items():
        lines.append(_per_class_table(f"Domain shift {results['label_set']} → {target} per-class AUC", result))
    return "\n\n".join(lines) + "\n"


def _summary_table(results: dict) -> str:
    shift = results.get("domain_shift", {})
    header = ["Method", "Training Ratio", f"Zero-Shot {results['label_set']}"] + [f"Domain Shift → {t}" for t in shift]
    row = [results.get("method", "TAMER"), "0%", _cell(results["zero_shot"])] + [_cell(r) for r in shift.values()]
    return _markdown_table(header, [row])


def _linear_probe_table(results: dict) -> str:
    probe = results["linear_probe"]
    header = ["Method"] + [f"Linear probe {key}" for key in probe]
    return _markdown_table(header, [[results.get("method", "TAMER")] + [_cell(r) for r in probe.values()]])


def _per_class_table(title: str, result: dict) -> str:
    rows = [[name, "excluded (one label value)" if auc is None else f"{100 * auc:.2f}", str(result["n_positive"][name])]
            for name, auc in result["per_class"].items()]
    return f"**{title}**\n\n" + _markdown_table(["Class", "AUC", "Positives"], rows)


def _cell(result: dict) -> str:
    text = f"{100 * result['macro_auc']:.2f}"
    ci = result.get("ci95")
    if ci and ci["num_samples"]:
        text += f" ({100 * ci['low']:.2f}–{100 * ci['high']:.2f})"
    return text


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

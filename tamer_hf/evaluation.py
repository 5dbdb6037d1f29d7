"""Zero-shot evaluation: macro-AUC with bootstrap CIs, domain shift, the reproducibility record, JSON/Markdown reports.

Everything here works on plain arrays (`y_true` multi-hot (N, C), `scores` (N, C), embeddings (N, D)), so the metric
runs offline and is independent of the model. The AUC is `sklearn.metrics.roc_auc_score` per class (hf_conventions
§6: evaluate needs the network and sklearn's macro average turns NaN when a class has one label value). The model
side only calls `model.get_ecg_features(input_values=...)` and `model.get_text_features(input_ids=...,
attention_mask=...)`, so any model family with those two methods is evaluated the same way. Linear probing lives in
`tamer_hf.linear_probe`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import urllib.error
import urllib.request
import warnings

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from .modeling.pipeline_zero_shot_ecg import (  # noqa: F401  (one recipe)
    MAX_PROMPT_TOKENS, PROMPT_STYLES, make_prompts, prompt_max_length)

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PACKAGED_DESCRIPTIONS = os.path.join(DATA_DIR, "label_descriptions.json")
PACKAGED_DOMAIN_MAPPING = os.path.join(DATA_DIR, "domain_mapping.json")
URL_TIMEOUT_S = 30
MIN_CI_CASES = 2  # a class with one positive (or one negative) makes every bootstrap resample repeat that one case


# ----------------------------------------------------------------------------------------------------------------------
# Prompt and mapping files


def read_json_source(source: str | os.PathLike) -> tuple[dict, bytes]:
    """A JSON object from a local path or an http(s) URL, with the raw bytes it was parsed from (for hashing).

    Errors are one-line `ValueError`s naming the source: a URL that cannot be fetched (e.g. offline), a missing file,
    text that is not a JSON object.
    """
    source = str(source)
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=URL_TIMEOUT_S) as response:
                raw = response.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            message = f"cannot download {source} ({reason}); download it and pass the local path instead."
            raise ValueError(message) from None
    else:
        try:
            with open(source, "rb") as handle:
                raw = handle.read()
        except OSError as error:
            raise ValueError(f"cannot read {source}: {error.strerror or error}.") from None
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source} is not a UTF-8 JSON file: {error}.") from None
    if not isinstance(table, dict):
        raise ValueError(f"{source} must hold a JSON object (label -> text), not a {type(table).__name__}.")
    return table, raw


def load_label_descriptions(label_set: str | None = None, path: str | os.PathLike | None = None) -> dict[str, str]:
    """Label → text to encode.

    `path` (a local file or an http(s) URL) reads a user JSON instead of the packaged file: either flat
    `{label: text}` (e.g. MERL's `CKEPE_prompt.json`, used as it is) or sectioned `{label_set: {label: text}}` like
    ours. `label_set` picks a section (`ptbxl_super`, `ptbxl_sub`, `ptbxl_form`, `ptbxl_rhythm`, `cpsc2018`, `csn`,
    `code_test`, `synthetic`); a flat file ignores it.
    """
    table, _ = read_json_source(path if path is not None else PACKAGED_DESCRIPTIONS)
    return descriptions_from_table(table, label_set)


def descriptions_from_table(table: dict, label_set: str | None) -> dict[str, str]:
    """The `{label: text}` of a flat table, or of section `label_set` of a sectioned one (keys `_*` are notes)."""
    table = {key: value for key, value in table.items() if not key.startswith("_")}
    if all(isinstance(value, str) for value in table.values()):
        return table
    if label_set is None:
        raise ValueError(f"This description file has sections {sorted(table)}; pass label_set= to pick one.")
    if label_set not in table:
        raise ValueError(f"Unknown label_set {label_set!r}; available: {sorted(table)}.")
    return dict(table[label_set])


def prompt_texts(descriptions: dict[str, str], style: str = "description") -> dict[str, str]:
    """The text of each label's prompt: `"description"`, the description as it is; `"name"`, the clinical name that
    opens a packaged description ("Atrial fibrillation: irregularly irregular ..." -> "Atrial fibrillation")."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}.")
    if style == "name":
        return {label: text.split(":")[0] for label, text in descriptions.items()}
    return dict(descriptions)


def load_domain_mapping(pair: str, path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Source class → target classes for `pair` = "SOURCE->TARGET" (e.g. "ptbxl_super->csn").

    The packaged file holds MERL's three published forward tables; a reverse pair ("csn->ptbxl_super") is its forward
    table read right to left: each target-side class of the table becomes a source class mapped to the table's
    source-side classes that list it.
    """
    table, _ = read_json_source(path if path is not None else PACKAGED_DOMAIN_MAPPING)
    if pair in table and not pair.startswith("_"):
        return {source: list(targets) for source, targets in table[pair].items()}
    source, _, target = pair.partition("->")
    reverse = f"{target}->{source}"
    if reverse in table and not reverse.startswith("_"):
        reversed_mapping: dict[str, list[str]] = {}
        for table_source, table_targets in table[reverse].items():
            for table_target in table_targets:
                reversed_mapping.setdefault(table_target, []).append(table_source)
        return reversed_mapping
    available = sorted(key for key in table if not key.startswith("_") and "->" in key)
    raise ValueError(f"No domain mapping {pair!r} (nor {reverse!r} to read in reverse); available: {available}.")


def label_set_of(dataset, task: str | None = None) -> str | None:
    """The description section for a dataset written by `datasets_scripts` (`ptbxl` + task -> `ptbxl_super`).

    PTB-XL datasets record their task; `task` is only used for one that does not. Data that lost the builder's
    metadata on the way (Parquet, the Hub) is matched by its class names: the smallest packaged section that holds
    every one of them, None when no section does."""
    from datasets_scripts.common import dataset_metadata, label_names

    try:
        metadata = dataset_metadata(dataset)
    except ValueError:
        metadata = {}
    source = metadata.get("tamer_source")
    if source == "ptbxl":
        return f"ptbxl_{metadata.get('task') or task or 'super'}"
    if source is not None:
        return source
    names = set(label_names(dataset))
    table, _ = read_json_source(PACKAGED_DESCRIPTIONS)
    covering = sorted((len(labels), key) for key, labels in table.items()
                      if not key.startswith("_") and names and names <= set(labels))
    return covering[0][1] if covering else None


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
    """Prompt embeddings (C, D), tokenised exactly as the pipeline does (at most 256 tokens, as MERL)."""
    # A model family without a `text_config` (the pipeline's source of the position limit) keeps MERL's 256.
    has_text_config = getattr(model.config, "text_config", None) is not None
    max_length = prompt_max_length(model.config) if has_text_config else MAX_PROMPT_TOKENS
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
    aucs = column_aucs(y_true, scores)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else None


def column_aucs(y_true, scores) -> np.ndarray:
    """ROC-AUC of every column (NaN where a column has one label value), for loops that recompute AUCs thousands of
    times (bootstrap resamples, per-epoch probe selection). It is the Mann-Whitney form, (rank sum of positives -
    P(P+1)/2) / (P N) with mid-ranks for ties, equal to `roc_auc_score` (tested) and ~300x faster than calling it
    per column; reported per-class AUCs still come from `roc_auc_score`."""
    y_true = np.asarray(y_true, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=np.float64), axis=0)  # (N, C), ties get their mean rank
    positives = y_true.sum(axis=0)
    negatives = len(y_true) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = ((ranks * y_true).sum(axis=0) - positives * (positives + 1) / 2.0) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), aucs, np.nan)


def evaluate_scores(y_true, scores, label_names: list[str], num_bootstrap: int = 1000, seed: int = 0) -> dict:
    """`per_class_auc` plus the bootstrap CI (`"ci95"`).

    The CI is omitted, with a warning and the reason in `"ci95_omitted"`, when a scored class has fewer than
    `MIN_CI_CASES` positives or negatives, or when the resamples give a zero-width interval: a "95 % CI" of
    (0.75-0.75) from a 2-record split claims a certainty the data cannot give."""
    result = per_class_auc(y_true, scores, label_names)
    kept = [i for i, name in enumerate(label_names) if name not in result["excluded"]]
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if num_bootstrap <= 0 or not kept:
        return result
    positives = y_true[:, kept].sum(axis=0)
    few = [label_names[i] for i, count in zip(kept, positives) if min(count, len(y_true) - count) < MIN_CI_CASES]
    reason = None
    if few:
        reason = f"class(es) {few} have fewer than {MIN_CI_CASES} positives or negatives"
    else:
        ci = bootstrap_macro_auc(y_true[:, kept], scores[:, kept], num_bootstrap, 0.95, seed)
        if ci["num_samples"] == 0 or not ci["high"] > ci["low"]:
            reason = f"the bootstrap resamples of {len(y_true)} records give a zero-width interval"
        else:
            result["ci95"] = ci
    if reason:
        warnings.warn(f"95 % CI omitted: {reason}.", stacklevel=2)
        result["ci95_omitted"] = reason
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


def covered_target_classes(mapping: dict[str, list[str]], target_names: list[str]) -> list[str]:
    """The target classes named anywhere in `mapping`, in the target set's column order."""
    named = {target for targets in mapping.values() for target in targets}
    missing = sorted(named - set(target_names))
    if missing:
        raise ValueError(f"Domain mapping names target classes {missing} that the target set lacks ({target_names}).")
    return [name for name in target_names if name in named]


def domain_shift_score(target_labels, target_scores, target_names: list[str], mapping: dict[str, list[str]],
                       num_bootstrap: int = 1000, seed: int = 0) -> dict:
    """The domain-shift score of a SOURCE->TARGET pair (MERL README; TALE `zeroshot/cross_domain_eval.py`).

    `target_scores` are ordinary zero-shot scores (N, C) on the target test split, one column per target class
    (target names and prompts); the score is the per-class AUC and its macro mean over the *covered* target classes,
    those that `mapping` matches to some source class. Returns the `evaluate_scores` layout plus `covered` and
    `not_covered` (target classes outside the mapping, not scored).
    """
    target_labels, target_scores = _check_pair(target_labels, target_scores, target_names)
    covered = covered_target_classes(mapping, target_names)
    columns = [target_names.index(name) for name in covered]
    result = evaluate_scores(target_labels[:, columns], target_scores[:, columns], covered, num_bootstrap, seed)
    result["covered"] = covered
    result["not_covered"] = [name for name in target_names if name not in covered]
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Reproducibility record: what results.json says about the code, checkpoint, data, prompts and command


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prompt_list_sha256(prompts: list[str]) -> str:
    """sha256 of the encoded texts in class order: `sha256(json.dumps(prompts, ensure_ascii=False).encode())`."""
    return sha256_bytes(json.dumps(list(prompts), ensure_ascii=False).encode("utf-8"))


def package_record() -> dict:
    """tamer-hf's version, and the git commit of its source tree when that tree is a git checkout (else None).

    The checkout must be the package's own (its top level holds `tamer_hf/`): a wheel installed into a virtual
    environment that happens to sit inside some git repository reports no commit."""
    from importlib import metadata

    package_dir = os.path.dirname(os.path.abspath(__file__))
    source_tree = os.path.dirname(package_dir)
    try:
        version = metadata.version("tamer-hf")
    except metadata.PackageNotFoundError:
        from . import __version__ as version
    commit, dirty = None, None
    top_level = _git(source_tree, "rev-parse", "--show-toplevel")
    if top_level is not None and os.path.realpath(top_level) == os.path.realpath(source_tree):
        commit = _git(source_tree, "rev-parse", "HEAD")
        status = _git(source_tree, "status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    return {"name": "tamer-hf", "version": version, "git_commit": commit, "git_dirty": dirty}


def _git(directory: str, *args: str) -> str | None:
    try:
        completed = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def checkpoint_record(model_name_or_path: str) -> dict:
    """sha256 of the checkpoint's weights: of `model.safetensors` when it is the only weight file, otherwise of the
    `sha256sum`-style listing ("<sha256>  <name>\\n", names sorted) of every weight file (*.safetensors, *.bin).

    A Hub id is looked up in the local Hub cache (where `from_pretrained` just put it); without a local copy the
    hashes are None."""
    folder = model_name_or_path
    if not os.path.isdir(folder):
        try:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(model_name_or_path, local_files_only=True)
        except Exception:  # noqa: BLE001  (no cached snapshot: the record says so instead of failing the evaluation)
            return {"path": model_name_or_path, "sha256": None, "files": {}}
    names = sorted(name for name in os.listdir(folder)
                   if name.endswith(WEIGHT_SUFFIXES) and os.path.isfile(os.path.join(folder, name)))
    files = {name: sha256_file(os.path.join(folder, name)) for name in names}
    if not files:
        digest = None
    elif len(files) == 1:
        digest = next(iter(files.values()))
    else:
        digest = sha256_bytes("".join(f"{files[name]}  {name}\n" for name in names).encode("utf-8"))
    return {"path": model_name_or_path, "sha256": digest, "files": files}


def dataset_record(dataset, path: str, split: str, max_records: int | None = None) -> dict:
    """Which records were scored: datasets' `_fingerprint` of the split used, its path, the builder's source and
    protocol from the dataset metadata (None when absent), and `records_sha256`, a path-independent hash of the
    `record_id` column and the labels (the fingerprint of a `save_to_disk` folder depends on file paths and times)."""
    from datasets_scripts.common import dataset_metadata, multi_hot_labels

    try:
        metadata = dataset_metadata(dataset)
    except ValueError:
        metadata = {}
    content = {}
    if "record_id" in dataset.column_names:
        content["record_id"] = dataset.with_format(None)["record_id"][:]
    if "labels" in dataset.column_names:  # multi-hot rows: the same hash for a folder prepared before labels moved
        content["labels"] = multi_hot_labels(dataset).tolist()
    return {
        "path": str(path), "split": split, "fingerprint": getattr(dataset, "_fingerprint", None),
        "records_sha256": sha256_bytes(json.dumps(content).encode("utf-8")) if content else None,
        "source": metadata.get("tamer_source"), "task": metadata.get("task"), "protocol": metadata.get("protocol"),
        "num_records": len(dataset), "max_records": max_records,
    }


def prompt_record(source: str, source_sha256: str | None, class_names: list[str], prompts: list[str]) -> dict:
    """Where the prompts came from (path or URL, sha256 of its bytes), the sha256 of the encoded list
    (`prompt_list_sha256`) and the prompts themselves, class by class."""
    return {"source": source, "source_sha256": source_sha256, "sha256": prompt_list_sha256(prompts),
            "prompts": dict(zip(class_names, prompts))}


def command_record(script: str, argv: list[str]) -> str:
    """The full command line, quoted so that it can be pasted into a shell."""
    return shlex.join(["python", script, *argv])


# ----------------------------------------------------------------------------------------------------------------------
# Reports


def save_results(results: dict, output_dir: str | os.PathLike) -> tuple[str, str]:
    """Write `results.json` and `results.md` (see `results_to_markdown`) into `output_dir`; return both paths.

    Each file is written to a temporary file in `output_dir` and renamed over the old one (`os.replace`), so a
    crash or a full disk mid-write leaves the previous complete file, never a truncated one."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "results.json")
    markdown_path = os.path.join(output_dir, "results.md")
    _write_atomically(json_path, json.dumps(results, indent=2, allow_nan=True))
    _write_atomically(markdown_path, results_to_markdown(results))
    return json_path, markdown_path


def _write_atomically(path: str, text: str) -> None:
    directory, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are meant to be read by others
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def results_to_markdown(results: dict) -> str:
    """Tables laid out like TAMER Tables 1–3 (Method | Training ratio | Zero-shot target | Domain shift targets),
    then MERL-style linear probing (1 % / 10 % / 100 %, `tamer_hf.linear_probe` layout), then per-class AUCs.
    AUCs are shown ×100."""
    lines = [_summary_table(results)]
    if results.get("linear_probe", {}).get("error"):
        lines.append(f"**Linear probe failed**: {results['linear_probe']['error']}")
    elif results.get("linear_probe"):
        lines.append(_linear_probe_table(results))
    lines.append(_per_class_table("Zero-shot per-class AUC", results["zero_shot"]))
    for target, result in results.get("domain_shift", {}).items():
        lines.append(_per_class_table(f"Domain shift {results['label_set']} → {target} per-class AUC", result))
    return "\n\n".join(lines) + "\n"


def _summary_table(results: dict) -> str:
    shift = results.get("domain_shift", {})
    header = ["Method", "Training Ratio", f"Zero-Shot {results['label_set']}"] + [f"Domain Shift → {t}" for t in shift]
    row = [results.get("method", "model"), "0%", _cell(results["zero_shot"])] + [_cell(r) for r in shift.values()]
    return _markdown_table(header, [row])


def _linear_probe_table(results: dict) -> str:
    probe = results["linear_probe"]
    recipe = probe["recipe"] + (" (optimistic: best test epoch)" if probe.get("optimistic") else "")
    header = ["Method", "Probe recipe"] + [f"Linear probe {key}" for key in probe["fractions"]]
    row = [results.get("method", "model"), recipe] + [_cell(r) for r in probe["fractions"].values()]
    return _markdown_table(header, [row])


def _per_class_table(title: str, result: dict) -> str:
    rows = [[name, "excluded (one label value)" if auc is None else f"{100 * auc:.2f}", str(result["n_positive"][name])]
            for name, auc in result["per_class"].items()]
    return f"**{title}**\n\n" + _markdown_table(["Class", "AUC", "Positives"], rows)


def _cell(result: dict) -> str:
    if not np.isfinite(result["macro_auc"]):
        return "— (every class excluded)"
    text = f"{100 * result['macro_auc']:.2f}"
    ci = result.get("ci95")
    if ci and ci["num_samples"]:
        text += f" ({100 * ci['low']:.2f}–{100 * ci['high']:.2f})"
    return text


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

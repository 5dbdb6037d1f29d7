"""Linear probing on frozen ECG embeddings: 1 %, 10 % and 100 % of the train split, three recipes, one head format.

The probe sees embeddings and labels only (`model.get_ecg_features` of any model family, computed once per split by
`tamer_hf.evaluation.embed_ecgs` with the encoder frozen in eval mode), so nothing here knows a model. Recipes:

- `clean` (default): a linear layer trained with Adam on a seeded random `fraction` of the train rows; the epoch is
  selected on the validation split's macro-AUC, and the test split is scored once, with that epoch's head.
- `merl`: MERL's `finetune/` recipe as shipped (reference/protocols.md §2): Adam lr 1e-3, weight decay 1e-4, batch 16,
  100 epochs, BCE-with-logits, `MultiStepLR([40], 0.1)` stepped after every batch *and* every epoch, subsets from
  `train_test_split(train_size=fraction, random_state=42)`, torch seed 42; the reported number is the best test
  macro-AUC over epochs (no validation-based selection), so it is **optimistic** and labelled so.
- `sklearn`: one-vs-rest logistic regression on standardised embeddings (the earlier scikit-learn probe).

Every recipe ends in a linear head `scores = embeds @ weight.T + bias` (the sklearn one folds the standardisation
into it), saved as `head.safetensors` + `head.json`, and the test scores are computed from that saved head, so that
`load_head` + `head_scores` in another process gives the same AUCs. A class with only positives or only negatives in
the train subset or in the test split is listed in `excluded` with the reason and left out of the macro mean; it is
never scored as 0.5.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .evaluation import column_aucs, evaluate_scores

FRACTIONS = (0.01, 0.1, 1.0)  # MERL's linear-probing protocol: 1 %, 10 %, 100 % of the train split
HEAD_WEIGHTS, HEAD_CONFIG = "head.safetensors", "head.json"


@dataclass(frozen=True)
class ProbeRecipe:
    """How a linear head is trained and which epoch is reported."""

    name: str
    learning_rate: float
    weight_decay: float
    batch_size: int
    epochs: int
    selection: str  # "validation": best validation macro-AUC; "test": best test macro-AUC (optimistic)
    subset: str  # "seeded": numpy choice with the run's seed; "merl": sklearn train_test_split, random_state 42
    torch_seed: int | None = None  # fixed by the recipe (MERL: 42); None uses the run's seed
    lr_drop_after_calls: int | None = None  # MERL: MultiStepLR(milestones=[40], gamma=0.1), stepped per batch + epoch
    lr_drop_factor: float = 0.1


RECIPES = {
    "clean": ProbeRecipe("clean", learning_rate=1e-3, weight_decay=0.0, batch_size=128, epochs=100,
                         selection="validation", subset="seeded"),
    # MERL:finetune/sub_script/** + finetune/main_single.py (reference/protocols.md §2)
    "merl": ProbeRecipe("merl", learning_rate=1e-3, weight_decay=1e-4, batch_size=16, epochs=100,
                        selection="test", subset="merl", torch_seed=42, lr_drop_after_calls=40),
}
MERL_SUBSET_SEED = 42  # train_test_split(..., random_state=42) in MERL:finetune/main_single.py
SELECTION_TEXT = {
    "validation": "epoch with the best validation macro-AUC; test scored once with it",
    "test": "best test macro-AUC over epochs, as MERL prints it (optimistic: selected on the test split)",
    "fit": "one fit on the train subset (no epochs)",
}


# ----------------------------------------------------------------------------------------------------------------------
# Subsets


def subsample_indices(num_records: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded random subset of `fraction` of the rows (at least one), sorted."""
    _check_fraction(fraction)
    size = max(1, int(round(num_records * fraction)))
    return np.sort(np.random.default_rng(seed).choice(num_records, size=size, replace=False))


def merl_subset_indices(num_records: int, fraction: float) -> np.ndarray:
    """MERL's subset: `train_test_split(rows, train_size=fraction, random_state=42)`'s train part; all rows at 100 %
    (sklearn refuses `train_size=1.0`, so MERL's 100 % runs cannot have split), at least one row."""
    _check_fraction(fraction)
    rows = np.arange(num_records)
    if fraction == 1.0:
        return rows
    # sklearn rounds train_size down and refuses an empty subset (MERL's call would fail): keep one row then.
    size = fraction if int(fraction * num_records) >= 1 else 1
    subset, _ = train_test_split(rows, train_size=size, random_state=MERL_SUBSET_SEED)
    return np.asarray(subset)


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")


def fraction_key(fraction: float) -> str:
    return f"{fraction * 100:g}%"


# ----------------------------------------------------------------------------------------------------------------------
# The probe


def linear_probe(train_embeds, train_labels, val_embeds, val_labels, test_embeds, test_labels, label_names: list[str],
                 recipe: str = "clean", fractions=FRACTIONS, seed: int = 0, num_bootstrap: int = 0,
                 output_dir: str | os.PathLike | None = None) -> dict:
    """Train one linear head per fraction of the train rows and score it on the test split.

    Embeddings are (N, D) arrays, labels multi-hot (N, C) in `label_names` order. `val_*` are needed by the `clean`
    and `merl` recipes (MERL reports the validation maximum too) and ignored by `sklearn`. With `output_dir`, each
    head is saved in `output_dir/<pct>pct/`. Returns `{"recipe", "settings", "selection", "optimistic",
    "fractions": {"1%": result, ...}}` where a result has the `evaluate_scores` layout plus `excluded_reasons`,
    `num_train`, `selected_epoch`, `validation_macro_auc` and `head` (the saved folder, or None).
    """
    if recipe not in (*RECIPES, "sklearn"):
        raise ValueError(f"Unknown probe recipe {recipe!r}; use one of {sorted((*RECIPES, 'sklearn'))}.")
    arrays = [np.asarray(x, dtype=np.float32) for x in (train_embeds, test_embeds)]
    train_embeds, test_embeds = arrays
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if recipe != "sklearn":
        if val_embeds is None or val_labels is None:
            raise ValueError(f"The {recipe!r} probe needs the validation split's embeddings and labels.")
        val_embeds, val_labels = np.asarray(val_embeds, dtype=np.float32), np.asarray(val_labels)
    settings = asdict(RECIPES[recipe]) if recipe in RECIPES else {"name": "sklearn", "model": "LogisticRegression",
                                                                  "max_iter": 1000, "standardise": True}
    selection = RECIPES[recipe].selection if recipe in RECIPES else "fit"
    results = {}
    for fraction in fractions:
        if recipe in RECIPES and RECIPES[recipe].subset == "merl":
            rows = merl_subset_indices(len(train_embeds), fraction)
        else:
            rows = subsample_indices(len(train_embeds), fraction, seed)
        train_x, train_y = train_embeds[rows], train_labels[rows]
        if recipe == "sklearn":
            weight, bias = _fit_logistic_regression(train_x, train_y, seed)
            record = {"selected_epoch": None, "validation_macro_auc": None}
        else:
            weight, bias, record = _train_head(train_x, train_y, val_embeds, val_labels, test_embeds, test_labels,
                                               RECIPES[recipe], seed)
        result = _score_head(weight, bias, train_y, test_embeds, test_labels, label_names, num_bootstrap, seed)
        result.update(record, num_train=int(len(rows)), head=None)
        if output_dir is not None:
            result["head"] = save_head(os.path.join(output_dir, f"{fraction * 100:g}pct"), weight, bias, {
                "recipe": recipe, "settings": settings, "selection": SELECTION_TEXT[selection], "fraction": fraction,
                "seed": seed, "label_names": list(label_names), "num_train": int(len(rows)),
                "train_rows_sha256": hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest(),
                "selected_epoch": record["selected_epoch"], "excluded": result["excluded"],
                "test_macro_auc": result["macro_auc"]})
        results[fraction_key(fraction)] = result
    return {"recipe": recipe, "settings": settings, "selection": SELECTION_TEXT[selection],
            "optimistic": selection == "test", "fractions": results}


def _train_head(train_x, train_y, val_x, val_y, test_x, test_y, recipe: ProbeRecipe, seed: int):
    """Adam on BCE-with-logits; after each epoch the validation (and, for a test-selected recipe, test) macro-AUC
    decides which epoch's head is kept. Returns `(weight (C, D), bias (C,), record)`."""
    threads = torch.get_num_threads()
    # A (batch, D) x (D, C) layer is too small for intra-op threads: on 2 busy cores one thread trained the clean
    # recipe in 0.5 s and two in 3.8 s (MERL recipe: 1.2 s vs 20.8 s). The caller's setting is restored.
    torch.set_num_threads(1)
    try:
        return _train_head_single_thread(train_x, train_y, val_x, val_y, test_x, test_y, recipe, seed)
    finally:
        torch.set_num_threads(threads)


def _train_head_single_thread(train_x, train_y, val_x, val_y, test_x, test_y, recipe: ProbeRecipe, seed: int):
    torch_seed = recipe.torch_seed if recipe.torch_seed is not None else seed
    torch.manual_seed(torch_seed)
    head = torch.nn.Linear(train_x.shape[1], train_y.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = None
    if recipe.lr_drop_after_calls is not None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [recipe.lr_drop_after_calls], recipe.lr_drop_factor)
    generator = torch.Generator().manual_seed(torch_seed)
    inputs, targets = torch.from_numpy(train_x), torch.from_numpy(train_y.astype(np.float32))
    fitted = _has_both_values(train_y)
    selected = {"score": -np.inf, "epoch": None, "state": copy.deepcopy(head.state_dict())}
    best_validation = {"score": None, "epoch": None}
    for epoch in range(1, recipe.epochs + 1):
        for batch in torch.randperm(len(inputs), generator=generator).split(recipe.batch_size):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        if scheduler is not None:
            scheduler.step()  # MERL steps it once more per epoch (protocols.md §2)
        weight, bias = head.weight.detach(), head.bias.detach()
        validation = _selection_auc(weight, bias, val_x, val_y, fitted)
        if validation is not None and (best_validation["score"] is None or validation > best_validation["score"]):
            best_validation = {"score": validation, "epoch": epoch}
        score = validation if recipe.selection == "validation" else _selection_auc(weight, bias, test_x, test_y, fitted)
        if score is not None and score > selected["score"]:
            selected = {"score": score, "epoch": epoch, "state": copy.deepcopy(head.state_dict())}
    if selected["epoch"] is None:  # no class has both label values in the selection split: keep the last epoch
        selected = {"score": None, "epoch": recipe.epochs, "state": head.state_dict()}
    record = {"selected_epoch": selected["epoch"], "validation_macro_auc": best_validation["score"],
              "validation_best_epoch": best_validation["epoch"]}
    return selected["state"]["weight"].numpy().copy(), selected["state"]["bias"].numpy().copy(), record


def _selection_auc(weight, bias, embeds, labels, fitted: np.ndarray) -> float | None:
    """Macro-AUC over the classes fitted in training that have both label values in `labels` (None if none)."""
    columns = np.flatnonzero(fitted & _has_both_values(labels))
    if not len(columns):
        return None
    return float(np.mean(column_aucs(labels[:, columns], head_scores(weight, bias, embeds)[:, columns])))


def _fit_logistic_regression(train_x: np.ndarray, train_y: np.ndarray, seed: int):
    """One-vs-rest logistic regression on standardised embeddings, folded into one linear head:
    w = coef / scale, b = intercept - coef · mean / scale. Classes without both label values keep a zero row."""
    scaler = StandardScaler().fit(train_x)
    standardised = scaler.transform(train_x)
    weight = np.zeros((train_y.shape[1], train_x.shape[1]))
    bias = np.zeros(train_y.shape[1])
    for index in np.flatnonzero(_has_both_values(train_y)):
        classifier = LogisticRegression(max_iter=1000, random_state=seed).fit(standardised, train_y[:, index])
        weight[index] = classifier.coef_[0] / scaler.scale_
        bias[index] = classifier.intercept_[0] - weight[index] @ scaler.mean_
    return weight.astype(np.float32), bias.astype(np.float32)


def _score_head(weight, bias, train_y, test_x, test_y, label_names, num_bootstrap, seed) -> dict:
    """Test AUCs of the head, excluding classes it could not learn (one label value in the train subset) and classes
    the test split cannot score (one label value there)."""
    scores = head_scores(weight, bias, test_x)
    fitted = _has_both_values(train_y)
    kept = [i for i in range(len(label_names)) if fitted[i]]
    result = evaluate_scores(test_y[:, kept], scores[:, kept], [label_names[i] for i in kept], num_bootstrap, seed)
    reasons = {name: _one_value_reason(train_y[:, i], "train subset") for i, name in enumerate(label_names)
               if not fitted[i]}
    reasons.update({name: _one_value_reason(test_y[:, label_names.index(name)], "test split")
                    for name in result["excluded"]})
    result["per_class"] = {name: result["per_class"].get(name) for name in label_names}
    result["excluded"] = [name for name in label_names if name in reasons]
    result["excluded_reasons"] = {name: reasons[name] for name in result["excluded"]}
    result["n_positive"] = {name: int(test_y[:, i].sum()) for i, name in enumerate(label_names)}
    return result


def _has_both_values(labels: np.ndarray) -> np.ndarray:
    return labels.min(axis=0) != labels.max(axis=0)


def _one_value_reason(column: np.ndarray, split: str) -> str:
    return f"no {'negative' if column.min() == 1 else 'positive'} in the {split}"


# ----------------------------------------------------------------------------------------------------------------------
# The saved head


def head_scores(weight, bias, embeds) -> np.ndarray:
    """Logits (N, C) of a linear head, computed in float32 with torch as in training, returned as float64."""
    weight = torch.as_tensor(np.asarray(weight, dtype=np.float32))
    bias = torch.as_tensor(np.asarray(bias, dtype=np.float32))
    embeds = torch.as_tensor(np.asarray(embeds, dtype=np.float32))
    with torch.no_grad():
        return torch.nn.functional.linear(embeds, weight, bias).double().numpy()


def save_head(directory: str | os.PathLike, weight, bias, metadata: dict) -> str:
    """`head.safetensors` (weight (C, D), bias (C,)) and `head.json` (recipe, fraction, seed, selected epoch, ...)."""
    os.makedirs(directory, exist_ok=True)
    tensors = {"weight": torch.as_tensor(np.asarray(weight, dtype=np.float32)).contiguous(),
               "bias": torch.as_tensor(np.asarray(bias, dtype=np.float32)).contiguous()}
    save_file(tensors, os.path.join(directory, HEAD_WEIGHTS))
    with open(os.path.join(directory, HEAD_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=2, allow_nan=True)
    return str(directory)


def load_head(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """`(weight, bias, metadata)` of a head written by `save_head`."""
    tensors = load_file(os.path.join(directory, HEAD_WEIGHTS))
    with open(os.path.join(directory, HEAD_CONFIG), encoding="utf-8") as handle:
        metadata = json.load(handle)
    return tensors["weight"].numpy(), tensors["bias"].numpy(), metadata

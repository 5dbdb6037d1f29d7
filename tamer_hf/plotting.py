"""Figures for zero-shot results: ROC curves, per-class AUC bars, and one ECG with its spectrogram and pipeline scores.

All functions return the matplotlib `Figure` and write a PNG when `path` is given. The Agg backend is used so that
they work on headless machines.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from .modeling.configuration_tamer import CANONICAL_LEADS  # noqa: E402



def plot_roc_curves(y_true, scores, label_names: list[str], path: str | None = None, title: str = "ROC curves"):
    """One ROC curve per class that has both label values (others are skipped, as in the macro-AUC)."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    figure, axis = plt.subplots(figsize=(6, 6))
    for index, name in enumerate(label_names):
        column = y_true[:, index]
        if column.min() == column.max():
            continue
        false_positive_rate, true_positive_rate, _ = roc_curve(column, scores[:, index])
        axis.plot(false_positive_rate, true_positive_rate, linewidth=1, label=name)
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    axis.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    axis.legend(fontsize="x-small", ncol=2 if len(label_names) > 12 else 1, loc="lower right")
    return _finish(figure, path)


def plot_per_class_auc(result: dict, path: str | None = None, title: str = "Per-class AUC"):
    """Horizontal bars of the per-class AUCs in `result` (the `tamer_hf.evaluation.per_class_auc` layout); excluded
    classes are listed in the title instead of drawn."""
    kept = {name: auc for name, auc in result["per_class"].items() if auc is not None}
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(kept) + 1.5))
    names = list(kept)
    axis.barh(names, [kept[name] for name in names], color="tab:blue")
    axis.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    axis.axvline(result["macro_auc"], color="tab:red", linewidth=1, label=f"macro {result['macro_auc']:.3f}")
    axis.set(xlim=(0, 1), xlabel="AUC", title=title)
    if result["excluded"]:
        axis.set_title(f"{title}\nexcluded (one label value): {', '.join(result['excluded'])}", fontsize="small")
    axis.invert_yaxis()
    axis.legend(loc="lower right", fontsize="small")
    return _finish(figure, path)


def plot_ecg_with_scores(ecg, scores: list[dict], spectrogram=None, sampling_rate: int = 500,
                         lead_names=CANONICAL_LEADS, path: str | None = None, top_k: int = 10):
    """A 12-lead ECG (left), the spectrogram of each lead (middle) and the pipeline's scores (right) in one figure.

    `ecg` is (12, T); `spectrogram` is (12, F, M) as returned by the feature extractor for display (optional);
    `scores` is one pipeline result `[{"label", "score"}, ...]`.
    """
    ecg = np.asarray(ecg)
    columns = 3 if spectrogram is not None else 2
    figure = plt.figure(figsize=(5 * columns, 12))
    grid = figure.add_gridspec(len(lead_names), columns, width_ratios=[3, 2, 2][:columns - 1] + [2])
    time = np.arange(ecg.shape[-1]) / sampling_rate
    for lead, name in enumerate(lead_names):
        axis = figure.add_subplot(grid[lead, 0])
        axis.plot(time, ecg[lead], linewidth=0.6, color="black")
        axis.set_ylabel(name, rotation=0, labelpad=15)
        axis.tick_params(labelbottom=lead == len(lead_names) - 1)
        if spectrogram is not None:
            _draw_spectrogram(figure.add_subplot(grid[lead, 1]), np.asarray(spectrogram)[lead], lead == len(lead_names) - 1)
    _draw_scores(figure.add_subplot(grid[:, -1]), scores[:top_k])
    return _finish(figure, path)


def _draw_spectrogram(axis, lead_spectrogram: np.ndarray, last: bool) -> None:
    # Display only: dB without the DC bin, which dominates a min-max scaled ECG (reference/paper_code.md §1.2).
    decibels = 20 * np.log10(lead_spectrogram[1:] + 1e-8)  # (F - 1, M)
    axis.imshow(decibels, aspect="auto", origin="lower", cmap="viridis", vmin=decibels.max() - 60, vmax=decibels.max())
    axis.set_yticks([])
    axis.tick_params(labelbottom=last)


def _draw_scores(axis, scores: list[dict]) -> None:
    labels = [entry["label"] for entry in scores]
    axis.barh(labels, [entry["score"] for entry in scores], color="tab:orange")
    axis.set(xlim=(0, 1), xlabel="score", title="zero-shot scores")
    axis.invert_yaxis()
    axis.tick_params(axis="y", labelsize="small")


def _finish(figure, path: str | None):
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure

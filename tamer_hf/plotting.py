"""Figures for ECGs and zero-shot results: the clinical 12-lead sheet, ROC curves, per-class score bars.

All functions return the matplotlib `Figure` and write a PNG when `path` is given (Agg backend: headless machines).

The ECG sheet follows the standard paper printout: 25 mm/s and 10 mm/mV (the same scale for every lead), a grid of
1 mm minor squares (0.04 s x 0.1 mV) and 5 mm major squares (0.2 s x 0.5 mV), a 1 mV x 0.2 s calibration pulse at the
start of each row, three rows of four 2.5 s columns (I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3, V6) and a 10 s
lead II rhythm strip. The figure is sized so that a print at 100 % has the true millimetre scale.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MultipleLocator, NullFormatter  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from .modeling.configuration_tamer import CANONICAL_LEADS  # noqa: E402

MM_PER_INCH = 25.4
PAPER_SPEED = 25.0  # mm/s
GAIN = 10.0  # mm/mV
MINOR_SECONDS, MINOR_MV = 0.04, 0.1  # 1 mm squares
MAJOR_SECONDS, MAJOR_MV = 0.2, 0.5  # 5 mm squares
CALIBRATION_SECONDS, CALIBRATION_MV = 0.2, 1.0  # the standard 5 mm wide, 10 mm tall pulse
CLINICAL_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
COLUMN_SECONDS = 2.5
RHYTHM_SECONDS = 10.0
ROW_PITCH_MV = 3.0  # 30 mm between row baselines
LEAD_IN_SECONDS = 0.4  # room for the calibration pulse before each row
MARGIN_MM = 5.0
GRID_MAJOR_COLOUR, GRID_MINOR_COLOUR, TRACE_COLOUR = "#e8a0a0", "#f7d7d7", "black"


def plot_ecg(ecg, sampling_rate: float = 500, lead_names=CANONICAL_LEADS, rhythm_lead: str = "II",
             title: str | None = None, path: str | None = None, dpi: int = 100):
    """A 12-lead ECG (12, T) in **millivolts** (the datasets' `ecg` column, not the normalised model input) on the
    clinical sheet: 3 x 4 leads of 2.5 s and a 10 s rhythm strip of `rhythm_lead`, 25 mm/s, 10 mm/mV."""
    width_mm, height_mm = _sheet_size_mm()
    figure = plt.figure(figsize=((width_mm + 2 * MARGIN_MM) / MM_PER_INCH,
                                 (height_mm + 2 * MARGIN_MM + (8 if title else 0)) / MM_PER_INCH), dpi=dpi)
    axis = _add_axes_mm(figure, MARGIN_MM, MARGIN_MM, width_mm, height_mm)
    draw_ecg_sheet(axis, ecg, sampling_rate, lead_names, rhythm_lead)
    if title:
        axis.set_title(title, fontsize="medium", loc="left")
    return _finish(figure, path)


def draw_ecg_sheet(axis, ecg, sampling_rate: float = 500, lead_names=CANONICAL_LEADS, rhythm_lead: str = "II"):
    """Draw the clinical sheet into `axis`; its data units are seconds (x) and millivolts (y)."""
    ecg = np.asarray(ecg, dtype=np.float64)  # (12, T) mV
    index = {name: i for i, name in enumerate(lead_names)}
    missing = [name for row in CLINICAL_LAYOUT for name in row if name not in index] + (
        [rhythm_lead] if rhythm_lead not in index else [])
    if ecg.ndim != 2 or ecg.shape[0] != len(lead_names) or missing:
        raise ValueError(f"expected an ECG of shape ({len(lead_names)}, T) whose lead_names include the 12 standard "
                         f"leads, got shape {ecg.shape} and missing {missing}")
    samples_per_column = int(round(COLUMN_SECONDS * sampling_rate))
    for row, names in enumerate(CLINICAL_LAYOUT):
        baseline = -row * ROW_PITCH_MV
        _draw_calibration(axis, baseline)
        for column, name in enumerate(names):
            start = column * samples_per_column
            segment = ecg[index[name], start:start + samples_per_column]  # (<= 2.5 s,)
            _draw_trace(axis, name, column * COLUMN_SECONDS, baseline, segment, sampling_rate)
            if column:
                axis.plot([column * COLUMN_SECONDS] * 2, [baseline - 0.3, baseline + 0.3], color=TRACE_COLOUR,
                          linewidth=0.8)
    rhythm_baseline = -len(CLINICAL_LAYOUT) * ROW_PITCH_MV
    _draw_calibration(axis, rhythm_baseline)
    rhythm = ecg[index[rhythm_lead], :int(round(RHYTHM_SECONDS * sampling_rate))]
    _draw_trace(axis, rhythm_lead, 0.0, rhythm_baseline, rhythm, sampling_rate, gid=f"rhythm {rhythm_lead}")
    _draw_grid(axis)


def plot_roc_curves(y_true, scores, label_names: list[str], path: str | None = None, title: str = "ROC curves"):
    """One ROC curve per class that has both label values, each in its own colour with its AUC in the legend;
    classes with one label value (no ROC, left out of the macro-AUC) are named under the plot."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    scored = [i for i in range(len(label_names)) if y_true[:, i].min() != y_true[:, i].max()]
    colours = distinct_colours(len(scored))
    figure, axis = plt.subplots(figsize=(7, 7))
    for colour, index in zip(colours, scored):
        false_positive_rate, true_positive_rate, _ = roc_curve(y_true[:, index], scores[:, index])
        auc = roc_auc_score(y_true[:, index], scores[:, index])
        axis.plot(false_positive_rate, true_positive_rate, color=colour, linewidth=1.2,
                  linestyle="-" if len(scored) <= 20 else ("-", "--", ":")[scored.index(index) % 3],
                  label=f"{label_names[index]} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance (AUC 0.500)")
    axis.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axis.set_aspect("equal")
    axis.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                ncol=2 if len(scored) > 24 else 1)
    excluded = [name for i, name in enumerate(label_names) if i not in scored]
    _footnote(figure, axis, "not drawn (one label value): " + ", ".join(excluded) if excluded else None)
    return _finish(figure, path)


def plot_per_class_auc(result: dict, path: str | None = None, title: str = "Per-class AUC"):
    """Horizontal bars of the per-class AUCs in `result` (the `tamer_hf.evaluation.per_class_auc` layout), each with
    its value written next to it (a zero AUC is a visible outlined bar and "0.000"); excluded classes are named
    under the plot."""
    kept = {name: auc for name, auc in result["per_class"].items() if auc is not None}
    figure, axis = plt.subplots(figsize=(7, 0.32 * len(kept) + 1.8))
    _draw_value_bars(axis, list(kept), list(kept.values()), "tab:blue")
    axis.axvline(0.5, color="grey", linestyle="--", linewidth=0.8, label="chance 0.5")
    axis.axvline(result["macro_auc"], color="tab:red", linewidth=1, label=f"macro {result['macro_auc']:.3f}")
    axis.set(xlabel="AUC", title=title)
    axis.legend(loc="lower left", bbox_to_anchor=(0, 1.06), ncol=2, fontsize="small", borderaxespad=0)
    excluded = result.get("excluded") or []
    _footnote(figure, axis, "excluded (one label value): " + ", ".join(excluded) if excluded else None)
    return _finish(figure, path)


def plot_ecg_with_scores(ecg, scores: list[dict], spectrogram=None, sampling_rate: float = 500,
                         lead_names=CANONICAL_LEADS, path: str | None = None, top_k: int = 10, dpi: int = 100):
    """The clinical ECG sheet (mV, 25 mm/s, 10 mm/mV) with the pipeline's scores beside it and, when given, the
    spectrogram of each lead (12, F, M) below it in the same 3 x 4 arrangement plus the rhythm lead.

    `scores` is one pipeline result `[{"label", "score"}, ...]`.
    """
    sheet_width, sheet_height = _sheet_size_mm()
    scores_width, spectrogram_height = 70.0, (70.0 if spectrogram is not None else 0.0)
    width = sheet_width + scores_width + 4 * MARGIN_MM + 25  # room for the score labels
    height = sheet_height + spectrogram_height + 3 * MARGIN_MM
    figure = plt.figure(figsize=(width / MM_PER_INCH, height / MM_PER_INCH), dpi=dpi)
    sheet = _add_axes_mm(figure, MARGIN_MM, MARGIN_MM + spectrogram_height, sheet_width, sheet_height)
    draw_ecg_sheet(sheet, ecg, sampling_rate, lead_names)
    bars = _add_axes_mm(figure, sheet_width + 2 * MARGIN_MM + 25, MARGIN_MM + spectrogram_height + 10,
                        scores_width, sheet_height - 20)
    top = scores[:top_k]
    _draw_value_bars(bars, [entry["label"] for entry in top], [entry["score"] for entry in top], "tab:orange")
    bars.set(xlabel="score", title="zero-shot scores")
    if spectrogram is not None:
        _draw_spectrograms(figure, np.asarray(spectrogram), lead_names, sheet_width, spectrogram_height)
    return _finish(figure, path)


def plot_spectrograms(spectrogram, lead_names=CANONICAL_LEADS, title: str | None = None, path: str | None = None,
                      dpi: int = 100):
    """The spectrogram of each lead (12, F, M) in the sheet's 3 x 4 lead arrangement (dB, display only), as
    `plot_ecg_with_scores` draws it below the ECG."""
    sheet_width, height = _sheet_size_mm()[0], 90.0
    figure = plt.figure(figsize=((sheet_width + 2 * MARGIN_MM) / MM_PER_INCH,
                                 (height + 2 * MARGIN_MM + (8 if title else 0)) / MM_PER_INCH), dpi=dpi)
    _draw_spectrograms(figure, np.asarray(spectrogram), lead_names, sheet_width, height)
    if title:
        figure.suptitle(title, x=MARGIN_MM / (sheet_width + 2 * MARGIN_MM), ha="left", fontsize="medium")
    return _finish(figure, path)


def distinct_colours(count: int) -> list:
    """`count` colours that differ from each other: tab10 up to 10, tab20 up to 20, evenly spaced hues beyond."""
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    if count <= 20:  # tab20's dark shades first, then the light ones: neighbours in the legend differ in hue
        return [plt.get_cmap("tab20")(i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:count]]
    return [plt.get_cmap("hsv")(i / count) for i in range(count)]


# ----------------------------------------------------------------------------------------------------------------------
# pieces


def _sheet_size_mm() -> tuple[float, float]:
    rows = len(CLINICAL_LAYOUT) + 1
    width = (LEAD_IN_SECONDS + RHYTHM_SECONDS) * PAPER_SPEED
    height = (ROW_PITCH_MV * rows) * GAIN  # half a pitch above the first row and below the rhythm strip
    return width, height


def _sheet_limits() -> tuple[tuple[float, float], tuple[float, float]]:
    rows = len(CLINICAL_LAYOUT) + 1
    return (-LEAD_IN_SECONDS, RHYTHM_SECONDS), (-ROW_PITCH_MV * (rows - 0.5), ROW_PITCH_MV / 2)


def _add_axes_mm(figure, left_mm, bottom_mm, width_mm, height_mm):
    figure_width, figure_height = (size * MM_PER_INCH for size in figure.get_size_inches())
    return figure.add_axes((left_mm / figure_width, bottom_mm / figure_height, width_mm / figure_width,
                            height_mm / figure_height))


def _draw_calibration(axis, baseline: float):
    start = -LEAD_IN_SECONDS + 0.1
    times = [start - 0.05, start, start, start + CALIBRATION_SECONDS, start + CALIBRATION_SECONDS,
             start + CALIBRATION_SECONDS + 0.05]
    values = [0, 0, CALIBRATION_MV, CALIBRATION_MV, 0, 0]
    axis.plot(times, np.add(values, baseline), color=TRACE_COLOUR, linewidth=0.9, gid="calibration")


def _draw_trace(axis, name, start: float, baseline: float, segment, sampling_rate: float, gid: str | None = None):
    time = start + np.arange(len(segment)) / sampling_rate
    axis.plot(time, segment + baseline, color=TRACE_COLOUR, linewidth=0.7, gid=gid or name)
    axis.text(start + 0.05, baseline + 0.9, name, fontsize=9, fontweight="bold", va="bottom")


def _draw_grid(axis):
    (x_low, x_high), (y_low, y_high) = _sheet_limits()
    axis.set_xlim(x_low, x_high)
    axis.set_ylim(y_low, y_high)
    axis.set_aspect(GAIN / PAPER_SPEED)  # 1 mV is 10 mm where 1 s is 25 mm
    axis.xaxis.set_major_locator(MultipleLocator(MAJOR_SECONDS))
    axis.xaxis.set_minor_locator(MultipleLocator(MINOR_SECONDS))
    axis.yaxis.set_major_locator(MultipleLocator(MAJOR_MV))
    axis.yaxis.set_minor_locator(MultipleLocator(MINOR_MV))
    axis.grid(which="major", color=GRID_MAJOR_COLOUR, linewidth=0.6)
    axis.grid(which="minor", color=GRID_MINOR_COLOUR, linewidth=0.3)
    axis.set_axisbelow(True)
    axis.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for spine in axis.spines.values():
        spine.set_color(GRID_MAJOR_COLOUR)
    axis.xaxis.set_major_formatter(NullFormatter())
    axis.yaxis.set_major_formatter(NullFormatter())


def _draw_value_bars(axis, labels: list[str], values: list[float], colour):
    """Bars from 0 to each value, outlined so that a zero is a visible line, with the value written beside it."""
    positions = np.arange(len(labels))
    axis.barh(positions, values, color=colour, edgecolor="black", linewidth=0.8, height=0.7)
    for position, value in zip(positions, values):
        axis.text(value + 0.01, position, f"{value:.3f}", va="center", fontsize="x-small", gid="value")
    axis.set_yticks(positions, labels, fontsize="small")
    axis.set_xlim(0, 1.12)  # room for the value of a bar at 1.0
    axis.set_ylim(len(labels) - 0.5, -0.5)  # first entry on top


def _draw_spectrograms(figure, spectrogram, lead_names, sheet_width: float, height: float):
    """12 small spectrograms (display only: dB without the DC bin, which dominates a min-max scaled ECG)."""
    index = {name: i for i, name in enumerate(lead_names)}
    cell_width, cell_height = sheet_width / 4, height / 3
    for row, names in enumerate(CLINICAL_LAYOUT):
        for column, name in enumerate(names):
            axis = _add_axes_mm(figure, MARGIN_MM + column * cell_width, MARGIN_MM + (2 - row) * cell_height,
                                cell_width - 2, cell_height - 2)
            decibels = 20 * np.log10(spectrogram[index[name]][1:] + 1e-8)  # (F - 1, M)
            axis.imshow(decibels, aspect="auto", origin="lower", cmap="viridis", vmin=decibels.max() - 60,
                        vmax=decibels.max())
            axis.set_xticks([])
            axis.set_yticks([])
            axis.text(0.01, 0.97, name, transform=axis.transAxes, color="white", fontsize=7, va="top")


def _footnote(figure, axis, text: str | None):
    """A wrapped note under the axes and their labels; saving with bbox_inches="tight" keeps it in the image."""
    if text:
        below_labels = axis.get_tightbbox(figure.canvas.get_renderer()).y0 - 6  # pixels
        figure.text(0.02, below_labels / figure.bbox.height, textwrap.fill(text, 110), fontsize="x-small", va="top",
                    ha="left", gid="note")


def _finish(figure, path: str | None):
    if path is not None:
        figure.savefig(path, dpi=figure.dpi, bbox_inches="tight", pad_inches=0.1)
    return figure

"""Figures read back from their axes: the ECG sheet's millimetre scale, grid, layout and one amplitude scale for every
lead; ROC legends with each AUC and distinct colours; score bars where a zero is visible and notes that fit."""

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from tamer_hf.evaluation import per_class_auc
from tamer_hf.modeling.configuration_tamer import CANONICAL_LEADS
from tamer_hf.plotting import plot_ecg, plot_ecg_with_scores, plot_per_class_auc, plot_roc_curves

FS = 500
PNG = b"\x89PNG\r\n\x1a\n"


def lead_coded_ecg():
    """(12, 5000) mV: lead k is a 1 Hz sine of amplitude 0.1 * (k + 1) plus a ramp, so each lead and time is known."""
    time = np.arange(5000) / FS
    return np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * time) + 0.01 * time for k in range(12)])


def millimetres_per_unit(figure, axis):
    figure.canvas.draw()
    origin, x_unit, y_unit = axis.transData.transform([(0, 0), (1, 0), (0, 1)])
    to_mm = 25.4 / figure.dpi
    return (x_unit - origin)[0] * to_mm, (y_unit - origin)[1] * to_mm


def lines_by_gid(axis):
    return {line.get_gid(): line for line in axis.get_lines() if line.get_gid()}


def test_ecg_sheet_is_25_mm_per_s_and_10_mm_per_mv_on_a_1_and_5_mm_grid(tmp_path):
    figure = plot_ecg(lead_coded_ecg(), FS, path=tmp_path / "ecg.png")
    axis = figure.axes[0]
    mm_per_second, mm_per_mv = millimetres_per_unit(figure, axis)
    assert mm_per_second == pytest.approx(25.0) and mm_per_mv == pytest.approx(10.0)
    for ticks, major, minor in ((axis.xaxis, 0.2, 0.04), (axis.yaxis, 0.5, 0.1)):
        low, high = ticks.get_view_interval()
        majors, minors = (locs[(locs >= low - 1e-9) & (locs <= high + 1e-9)]
                          for locs in (ticks.get_majorticklocs(), ticks.get_minorticklocs()))
        assert np.diff(majors) == pytest.approx(major)
        every_line = np.sort(np.concatenate([majors, minors]))
        assert np.diff(every_line) == pytest.approx(minor)  # minor lines fill each major square in 1 mm steps
        assert all(line.get_visible() for line in ticks.get_gridlines())
    calibration = [line for line in axis.get_lines() if line.get_gid() == "calibration"]
    assert len(calibration) == 4  # one 1 mV x 0.2 s pulse per row
    times, values = calibration[0].get_data()
    assert np.ptp(values) == pytest.approx(1.0) and times[3] - times[2] == pytest.approx(0.2)
    assert (tmp_path / "ecg.png").read_bytes()[:8] == PNG


def test_ecg_sheet_layout_and_one_amplitude_scale_for_every_lead():
    ecg = lead_coded_ecg()
    axis = plot_ecg(ecg, FS).axes[0]
    lines = lines_by_gid(axis)
    layout = [("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6")]
    for row, names in enumerate(layout):
        for column, name in enumerate(names):
            times, values = lines[name].get_data()
            window = slice(column * 1250, (column + 1) * 1250)  # 2.5 s columns, in time order
            assert times[0] == pytest.approx(2.5 * column) and len(times) == 1250
            # the trace is the signal in mV shifted to its row: no lead is rescaled on its own
            np.testing.assert_allclose(values - (-3.0 * row), ecg[CANONICAL_LEADS.index(name), window], atol=1e-12)
    times, values = lines["rhythm II"].get_data()
    assert times[-1] == pytest.approx(10 - 1 / FS)
    np.testing.assert_allclose(values - values[0], ecg[1] - ecg[1, 0], atol=1e-12)


def test_ecg_sheet_rejects_a_record_without_the_standard_leads():
    with pytest.raises(ValueError, match="missing"):
        plot_ecg(np.zeros((12, 5000)), FS, lead_names=[f"L{i}" for i in range(12)])


def two_class_scores(num_classes, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, (300, num_classes))
    scores = y_true + rng.normal(0, 1.0 + np.arange(num_classes) / 4, (300, num_classes))
    return y_true, scores


@pytest.mark.parametrize("num_classes", [5, 14, 25])
def test_roc_legend_names_each_auc_and_every_curve_has_its_own_colour(num_classes, tmp_path):
    y_true, scores = two_class_scores(num_classes)
    y_true[:, 1] = 0  # one label value: no curve, named in a note
    names = [f"class{i}" for i in range(num_classes)]
    figure = plot_roc_curves(y_true, scores, names, path=tmp_path / "roc.png")
    axis = figure.axes[0]
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    expected = [f"{name} (AUC {roc_auc_score(y_true[:, i], scores[:, i]):.3f})" for i, name in enumerate(names)
                if i != 1]
    assert legend == expected + ["chance (AUC 0.500)"]
    curves = [line for line in axis.get_lines() if "AUC" in line.get_label() and "chance" not in line.get_label()]
    styles = {(tuple(np.round(line.get_color(), 3)), line.get_linestyle()) for line in curves}
    assert len(curves) == num_classes - 1 and len({style[0] for style in styles}) == len(curves)
    assert_note_fits(figure, "not drawn (one label value): class1", tmp_path / "roc.png")


def test_score_bars_show_a_zero_and_the_excluded_note_fits(tmp_path):
    y_true, scores = two_class_scores(4)
    scores[:, 2] = -y_true[:, 2]  # AUC 0: a bar of zero length
    y_true[:, 3] = 1
    result = per_class_auc(y_true, scores, ["A", "B", "C", "D"])
    assert result["per_class"]["C"] == 0.0 and result["excluded"] == ["D"]
    figure = plot_per_class_auc(result, path=tmp_path / "auc.png")
    axis = figure.axes[0]
    bars = axis.patches
    assert [round(bar.get_width(), 6) for bar in bars] == [round(result["per_class"][n], 6) for n in "ABC"]
    assert bars[2].get_width() == 0 and bars[2].get_linewidth() > 0 and bars[2].get_edgecolor()[3] > 0
    values = [text.get_text() for text in axis.texts if text.get_gid() == "value"]
    assert values == [f"{result['per_class'][n]:.3f}" for n in "ABC"] and values[2] == "0.000"
    assert_note_fits(figure, "excluded (one label value): D", tmp_path / "auc.png")
    assert (tmp_path / "auc.png").read_bytes()[:8] == PNG


def test_ecg_with_scores_keeps_the_sheet_scale(tmp_path):
    ecg = lead_coded_ecg()
    figure = plot_ecg_with_scores(ecg, [{"label": "AFIB", "score": 0.7}, {"label": "NORM", "score": 0.0}],
                                  spectrogram=np.random.default_rng(0).random((12, 63, 81)),
                                  path=tmp_path / "ecg.png")
    sheet, bars = figure.axes[:2]
    assert millimetres_per_unit(figure, sheet) == pytest.approx((25.0, 10.0))
    assert [text.get_text() for text in bars.texts] == ["0.700", "0.000"]
    assert len(figure.axes) == 2 + 12  # the sheet, the scores and one spectrogram per lead
    assert (tmp_path / "ecg.png").read_bytes()[:8] == PNG


def assert_note_fits(figure, text, png_path):
    """The note is there, under the axes, and inside the image that was written (savefig with the tight box)."""
    notes = [note for note in figure.texts if note.get_gid() == "note"]
    assert [note.get_text().replace("\n", " ") for note in notes] == [text]
    renderer = figure.canvas.get_renderer()
    note = notes[0].get_window_extent(renderer)  # pixels
    assert note.y1 <= figure.axes[0].get_tightbbox(renderer).y0  # below the plot, not over it
    written = figure.get_tightbbox(renderer).padded(0.1).transformed(figure.dpi_scale_trans)  # as _finish saves
    height, width = imread(png_path).shape[:2]
    assert (width, height) == (pytest.approx(written.width, abs=2), pytest.approx(written.height, abs=2))
    assert written.x0 - 1 <= note.x0 and note.x1 <= written.x1 + 1 and written.y0 - 1 <= note.y0

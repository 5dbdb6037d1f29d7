"""Records longer than the model's 10 s window are scored window by window (issue 14): consecutive 10 s windows, the
final partial one padded or left out, the window scores aggregated by mean or max and returned on request, and a day
of 12-lead 500 Hz Holter data read from its WFDB file one window at a time under a 1.5 GB address-space limit."""

import itertools
import json
import re
import os
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest

from tamer_hf import CANONICAL_LEADS, TamerFeatureExtractor
from tamer_hf.modeling.ecg_validation import ECGQualityWarning
from tamer_hf.modeling.feature_extraction_tamer import WfdbRecord, read_wfdb
from tamer_hf.pipelines import TASK, pipeline, save_pretrained_with_pipeline
from tamer_hf.testing_utils import tiny_model_and_processor

LABELS = ["atrial fibrillation", "sinus rhythm", "left bundle branch block"]
LEADS = list(CANONICAL_LEADS)
RATE = 500
# the cheapest TamerModel (ECG encoder only, no WLAI): a day of windows must be scored in CI on 2 cores
FAST_MODEL = dict(ecg_stem_channels=4, ecg_stem_kernel_size=3, ecg_channels=[4, 4, 4, 4], use_spectrogram=False,
                  use_rlca=False, use_wlai=False)
DAY_S = 24 * 3600
GIB = 1024**3


def make_ecg(seconds: float, rate: float = RATE, seed: int = 0) -> np.ndarray:
    """(12, T) ECG-like record in mV whose beat amplitude drifts over time, so that its windows differ."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(round(seconds * rate))) / rate
    beats = np.sin(np.pi * 1.2 * time) ** 40 * (1 + 0.5 * np.sin(2 * np.pi * time / 47))
    return beats * rng.uniform(0.5, 2.0, (12, 1)) + 0.05 * rng.normal(size=(12, time.size))


def save_classifier(directory, **overrides):
    model, processor = tiny_model_and_processor(texts=LABELS, **overrides)
    save_pretrained_with_pipeline(model, processor, directory)
    return pipeline(TASK, model=str(directory))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("long_records") / "model")


def scores_by_label(result, key="score"):
    return {entry["label"]: entry[key] for entry in result}


def score_alone(classifier, ecg, **kwargs):
    """What the pipeline gives for `ecg` as a record of its own (a padded slice warns that it is short)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ECGQualityWarning)
        return scores_by_label(classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, **kwargs))


# ----------------------------------------------------------------------------------------------------------------------
# Aggregation and window scores


@pytest.mark.parametrize("aggregation, reduce", [("mean", np.mean), ("max", np.max)])
def test_a_35_s_record_scores_the_mean_or_max_of_its_10_s_windows(classifier, aggregation, reduce):
    ecg = make_ecg(35)
    with pytest.warns(ECGQualityWarning, match=r"lasts 35.0 s: 4 windows of 10 s, the last of them holding its "
                                               r"final 5.0 s, zero-padded"):
        result = classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, window_aggregation=aggregation,
                            return_window_scores=True)
    slices = [ecg[:, start:start + 5000] for start in range(0, ecg.shape[1], 5000)]  # 10, 10, 10 and 5 s
    alone = [score_alone(classifier, piece) for piece in slices]
    for entry in result:
        expected = [scores[entry["label"]] for scores in alone]
        np.testing.assert_allclose(entry["window_scores"], expected, rtol=1e-5, atol=1e-7)
        assert entry["score"] == pytest.approx(reduce(entry["window_scores"]), rel=1e-9)
        assert entry["window_starts"] == [0.0, 10.0, 20.0, 30.0]
    assert [entry["score"] for entry in result] == sorted((entry["score"] for entry in result), reverse=True)
    if aggregation == "mean":  # a mean of softmaxes still sums to 1
        assert sum(entry["score"] for entry in result) == pytest.approx(1.0, abs=1e-6)
    assert not result[0]["quality"]["ok"] and "zero-padded" in result[0]["quality"]["issues"][0]


def test_window_aggregation_applies_to_raw_cosines_and_multi_label_scores(classifier):
    ecg = make_ecg(30)
    for kwargs in ({"function_to_apply": "none"}, {"multi_label": True}):
        result = classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True, **kwargs)
        alone = [score_alone(classifier, ecg[:, start:start + 5000], **kwargs) for start in (0, 5000, 10000)]
        for entry in result:
            np.testing.assert_allclose(entry["window_scores"], [scores[entry["label"]] for scores in alone],
                                       rtol=1e-5, atol=1e-6)
            assert entry["score"] == pytest.approx(np.mean(entry["window_scores"]), rel=1e-9)


def test_window_scores_only_on_request_and_the_default_output_is_unchanged(classifier):
    ecg = make_ecg(30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ECGQualityWarning)  # 3 whole windows: nothing to warn about
        plain = classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS)
        detailed = classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True, top_k=2)
    assert all(set(entry) == {"label", "score", "quality"} for entry in plain)
    assert plain[0]["quality"] == {"ok": True, "issues": []}
    assert [entry["label"] for entry in detailed] == [entry["label"] for entry in plain[:2]]
    for entry in detailed:
        assert set(entry) == {"label", "score", "quality", "window_scores", "window_starts", "window_quality"}
        assert len(entry["window_scores"]) == 3 and entry["window_starts"] == [0.0, 10.0, 20.0]
        assert entry["window_quality"] == [{"ok": True, "issues": []}] * 3
    ten_seconds = classifier(ecg[:, :5000], sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True)
    assert all(entry["window_scores"] == [entry["score"]] and entry["window_starts"] == [0.0] for entry in ten_seconds)


def test_batched_windows_of_several_records_give_the_same_scores(classifier):
    records = [make_ecg(30, seed=1), make_ecg(10, seed=2), make_ecg(20, seed=3)]
    one_by_one = [classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True)
                  for ecg in records]
    batched = classifier(records, sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True,
                         batch_size=4)  # batches straddle the records: 4 windows, then 2
    for alone, together in zip(one_by_one, batched):
        assert [entry["label"] for entry in together] == [entry["label"] for entry in alone]
        for first, second in zip(alone, together):
            np.testing.assert_allclose(second["window_scores"], first["window_scores"], rtol=1e-5, atol=1e-7)
            assert second["window_starts"] == first["window_starts"]


@pytest.mark.parametrize("kwargs, match", [
    ({"window_aggregation": "median"}, r"window_aggregation must be one of \('mean', 'max'\), got 'median'"),
    ({"window_aggregation": "MEAN"}, r"one of \('mean', 'max'\)"),
    ({"return_window_scores": "yes"}, "return_window_scores must be True or False"),
])
def test_bad_window_options_are_clear_errors(classifier, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classifier(make_ecg(30), sampling_rate=RATE, candidate_labels=LABELS, **kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# The partial-window rule and the quality of windows


@pytest.mark.parametrize("seconds, starts, warning", [
    (10.0, [0], None),
    (10.1, [0], None),  # within 2 % of the window: cut without a word, as before
    (12.0, [0], r"lasts 12.0 s: 1 windows of 10 s; its final 2.0 s \(under half a window\) are not scored"),
    (14.9, [0], r"its final 4.9 s \(under half a window\) are not scored"),
    (15.0, [0, 10], r"lasts 15.0 s: 2 windows of 10 s, the last of them holding its final 5.0 s, zero-padded"),
    (20.0, [0, 10], None),
    (20.1, [0, 10], None),
    (29.0, [0, 10, 20], r"its final 9.0 s, zero-padded"),
    (6.0, [0], r"lasts 6.0 s, shorter than the model's 10 s window; it was zero-padded"),
])
def test_the_final_partial_window_is_padded_from_half_a_window_and_left_out_below(seconds, starts, warning):
    extractor = TamerFeatureExtractor()
    ecg = make_ecg(seconds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        windows = extractor.windows(ecg, sampling_rate=RATE)
        prepared = list(windows)
    messages = [str(w.message) for w in caught if issubclass(w.category, ECGQualityWarning)]
    assert windows.start_seconds == [float(start) for start in starts] == [w.start_s for w in prepared]
    if warning is None:
        assert messages == [] and windows.quality == {"ok": True, "issues": []}
    else:
        assert len(messages) == 1 and re.search(warning, messages[0]), messages
        assert not windows.quality["ok"]
    for start, window in zip(starts, prepared):  # each window is its slice prepared alone
        piece = ecg[:, start * RATE:(start + 10) * RATE]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ECGQualityWarning)
            alone = extractor(piece, sampling_rate=RATE)["input_values"][0]
        np.testing.assert_array_equal(window.input_values, alone)


def test_windows_at_an_odd_rate_start_every_10_s_and_match_the_record_from_there():
    rate = 257
    ecg = make_ecg(40, rate=rate)
    extractor = TamerFeatureExtractor()
    windows = list(extractor.windows(ecg, sampling_rate=rate))
    assert [window.start_s for window in windows] == pytest.approx([0, 10, 20, 30], abs=1 / rate)
    with pytest.warns(ECGQualityWarning, match="only its first 10 s"):
        third = extractor(ecg[:, round(20 * rate):], sampling_rate=rate)["input_values"][0]
    np.testing.assert_array_equal(windows[2].input_values, third)


def test_window_quality_issues_are_summed_up_in_one_warning_and_strict_names_the_window(classifier):
    ecg = make_ecg(60)
    ecg[:, 20 * RATE:30 * RATE] = 0.3  # electrodes off for the third window
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, return_window_scores=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, ECGQualityWarning)]
    assert messages == ["ECG #0: 1 of its 6 windows have quality issues (at 20 s: flat line: every sample equals "
                        "0.3.)."], messages
    window_quality = result[0]["window_quality"]
    assert [quality["ok"] for quality in window_quality] == [True, True, False, True, True, True]
    assert result[0]["quality"] == {"ok": False, "issues": [messages[0][len("ECG #0: "):]]}
    with pytest.raises(ValueError, match=r"ECG #0: window at 20 s: flat line.*strict=True"):
        classifier(ecg, sampling_rate=RATE, candidate_labels=LABELS, strict=True)


def test_the_first_10_s_only_warning_points_to_windows():
    with pytest.warns(ECGQualityWarning, match=r"lasts 30.0 s; only its first 10 s are prepared here "
                                               r"\(`TamerFeatureExtractor.windows` and the zero-shot pipeline"):
        TamerFeatureExtractor()(make_ecg(30), sampling_rate=RATE)


def test_a_batch_is_not_one_record_of_windows():
    with pytest.raises(ValueError, match="Got a batch of 2 ECGs as one input"):
        TamerFeatureExtractor().windows(np.stack([make_ecg(20), make_ecg(20)]), sampling_rate=RATE)


# ----------------------------------------------------------------------------------------------------------------------
# Bounded memory: arrays are sliced, WFDB files read window by window


def test_a_day_long_array_is_sliced_window_by_window_never_copied_whole():
    """A 24 h (12, 43.2 M) record held as a view of one 86 MB lead: 4 GB if converted whole."""
    beats = np.round(make_ecg(1)[1] * 1000).astype(np.int16)  # one second in microvolts (and flagged as such)
    lead = np.tile(beats, DAY_S)  # (43 200 000,)
    holter = np.lib.stride_tricks.as_strided(lead, shape=(12, lead.size), strides=(0, lead.strides[0]))
    extractor = TamerFeatureExtractor()
    tracemalloc.start()
    try:
        windows = extractor.windows(holter, sampling_rate=RATE, lead_names=LEADS)
        first = list(itertools.islice(windows, 3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(windows) == 8640 and windows.start_seconds[-1] == DAY_S - 10
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated"
    with pytest.warns(ECGQualityWarning, match="implausibly large for millivolts"):
        alone = extractor(holter[:, 10 * RATE:20 * RATE], sampling_rate=RATE)["input_values"][0]
    np.testing.assert_array_equal(first[1].input_values, alone)


@pytest.mark.parametrize("fmt", ["16", "32", "80", "212"])  # 212: 12-bit pairs packed in 3 bytes
def test_a_wfdb_record_reads_any_span_as_wfdb_reads_the_whole_record(tmp_path, fmt):
    wfdb = pytest.importorskip("wfdb")
    signal = make_ecg(25).T.copy()  # (T, 12)
    signal[1234, 3] = np.nan  # an invalid sample
    wfdb.wrsamp("rec", fs=RATE, units=["mV"] * 6 + ["uV"] * 6, sig_name=LEADS,
                p_signal=np.where(np.arange(12) < 6, signal, signal * 1000), fmt=[fmt] * 12, write_dir=str(tmp_path))
    whole, rate, names = read_wfdb(tmp_path / "rec")
    record = WfdbRecord(tmp_path / "rec.hea")
    assert (record.shape, record.sampling_rate, record.lead_names) == (whole.shape, rate, names)
    for start, stop in [(0, 5000), (1000, 1300), (7000, 12500), (12000, 20000)]:
        np.testing.assert_array_equal(record.read(start, stop), whole[:, start:min(stop, whole.shape[1])])
    extractor = TamerFeatureExtractor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ECGQualityWarning)
        from_file = [window.input_values for window in extractor.windows(str(tmp_path / "rec.hea"))]
        from_array = [window.input_values for window in extractor.windows(whole, sampling_rate=RATE,
                                                                          lead_names=names)]
    np.testing.assert_array_equal(np.stack(from_file), np.stack(from_array))


# Run in a child process whose address space is capped before torch is imported: argv = limit, model folder, record
# path, output path. Only the window scores and the process's peak resident memory come back.
SCORE_A_DAY = textwrap.dedent("""
    import json, resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch
    import tamer_hf
    torch.set_num_threads(1)
    classifier = tamer_hf.pipeline(model=sys.argv[2])
    result = classifier(sys.argv[3], candidate_labels=json.loads(sys.argv[5]), return_window_scores=True,
                        batch_size=64)
    for entry in result:
        del entry["window_quality"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump({"result": result, "peak_mb": peak_mb}, open(sys.argv[4], "w"))
""")


def write_day_long_wfdb(directory, name="holter") -> str:
    """A 24 h 12-lead 500 Hz format-16 record (1.04 GB .dat), header written by hand, data 10 minutes at a time.

    The beats (72 bpm) repeat exactly every 10 minutes, so one block of them is computed once; each block gets its own
    beat amplitude (an hourly cycle) and its own stretch of noise, so that windows differ."""
    block = 600 * RATE
    time = np.arange(block) / RATE
    gains = np.linspace(600, 1800, 12)  # microvolts
    beats = ((np.sin(np.pi * 1.2 * time) ** 40)[:, None] * gains).astype(np.float32)  # (block, 12)
    noise = np.random.default_rng(0).normal(0, 30, (block + 777, 12)).astype(np.float32)  # (block + 777, 12)
    with open(directory / f"{name}.dat", "wb") as handle:
        for start in range(0, DAY_S * RATE, block):
            amplitude = 1 + 0.5 * np.sin(2 * np.pi * start / (3600 * RATE))
            offset = start % 777
            values = beats * np.float32(amplitude) + noise[offset:offset + block]  # (block, 12) microvolts
            values.round().astype("<i2").tofile(handle)  # 1000 adu/mV, interleaved by sample
    lines = [f"{name} 12 {RATE} {DAY_S * RATE}"]
    lines += [f"{name}.dat 16 1000(0)/mV 16 0 0 0 0 {lead}" for lead in LEADS]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return str(directory / f"{name}.hea")


def test_a_24_hour_wfdb_record_is_scored_window_by_window_in_under_1_5_gb(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    classifier = save_classifier(tmp_path / "model", **FAST_MODEL)
    header = write_day_long_wfdb(tmp_path)
    output = tmp_path / "scores.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.run(
        [sys.executable, "-c", SCORE_A_DAY, str(int(1.5 * GIB)), str(tmp_path / "model"), header, str(output),
         json.dumps(LABELS)], env=env, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    scored = json.loads(output.read_text())
    result = scored["result"]
    assert result[0]["quality"] == {"ok": True, "issues": []}
    for entry in result:
        assert len(entry["window_scores"]) == 8640
        assert entry["window_starts"] == [10.0 * index for index in range(8640)]
        assert entry["score"] == pytest.approx(np.mean(entry["window_scores"]), rel=1e-9)
    for index in (0, 4321, 8639):  # each window equals its 10 s slice, read by wfdb and scored as an array
        piece, _ = wfdb.rdsamp(header[:-4], sampfrom=index * 5000, sampto=(index + 1) * 5000)
        alone = score_alone(classifier, piece.T)
        for entry in result:
            assert entry["window_scores"][index] == pytest.approx(alone[entry["label"]], rel=1e-5, abs=1e-7)

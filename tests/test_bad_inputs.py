"""Malformed and degenerate inputs to the feature extractor, the processor and the zero-shot pipeline (issue 14).

Each case ends in one of two ways: a clear error of ours (`ValueError`/`TypeError` whose message names the problem),
or a named `ECGQualityWarning` plus a sane result (finite values in [0, 1], the record's `quality` listing the problem).
No case may pass silently with a wrong answer.
"""

import re
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

from tamer_hf import CANONICAL_LEADS, TamerFeatureExtractor, TamerProcessor
from tamer_hf.modeling.ecg_validation import ECGQualityWarning
from tamer_hf.modeling.feature_extraction_tamer import resampling_ratio
from tamer_hf.pipelines import TASK, pipeline, save_pretrained_with_pipeline
from tamer_hf.testing_utils import tiny_model_and_processor, tiny_tokenizer

LABELS = ["atrial fibrillation", "sinus rhythm", "left bundle branch block"]
LEADS = list(CANONICAL_LEADS)


def make_ecg(seconds: float = 10.0, rate: float = 500, seed: int = 0) -> np.ndarray:
    """(12, T) ECG-like record in mV: spiky beats at 72 bpm, lead-specific gains, a little noise."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(round(seconds * rate))) / rate
    beats = np.sin(np.pi * 1.2 * time) ** 40  # one narrow peak per beat
    return beats * rng.uniform(0.5, 2.0, (12, 1)) + 0.05 * rng.normal(size=(12, time.size))


@pytest.fixture(scope="module")
def extractor():
    return TamerFeatureExtractor()


@pytest.fixture(scope="module")
def processor():
    return TamerProcessor(TamerFeatureExtractor(), tiny_tokenizer(LABELS), max_text_length=32)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    model, model_processor = tiny_model_and_processor(texts=LABELS)
    directory = tmp_path_factory.mktemp("bad_inputs") / "model"
    save_pretrained_with_pipeline(model, model_processor, directory)
    return pipeline(TASK, model=str(directory))


def prepared_without_quality_warnings(extractor, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ECGQualityWarning)
        return extractor(*args, **kwargs)


def assert_sane(values):
    values = np.asarray(values)
    assert values.shape[-2:] == (12, 5000)
    assert np.isfinite(values).all()
    assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6


# ----------------------------------------------------------------------------------------------------------------------
# Errors: the input cannot be an ECG, or contradicts itself

ECG = make_ecg()


def _ragged():
    return [[0.0] * 5000] * 11 + [[0.0] * 4000]


ERROR_CASES = {
    # shape
    "1-D array": ((ECG[0],), {"sampling_rate": 500}, ValueError, "2 dimensions"),
    "4-D array": ((ECG[None, None],), {"sampling_rate": 500}, ValueError, "got 4 dimension"),
    "0-D scalar": ((np.float64(3.0),), {"sampling_rate": 500}, ValueError, "got 0 dimension"),
    "no samples": ((np.zeros((12, 0)),), {"sampling_rate": 500}, ValueError, "empty"),
    "no leads": ((np.zeros((0, 5000)),), {"sampling_rate": 500}, ValueError, "empty"),
    "3 unnamed leads": ((ECG[:3],), {"sampling_rate": 500}, ValueError, "pass `lead_names`"),
    "13 unnamed leads": ((np.vstack([ECG, ECG[:1]]),), {"sampling_rate": 500}, ValueError, "expects 12"),
    "ragged nested lists": ((_ragged(),), {"sampling_rate": 500}, ValueError, "could not be turned into an array"),
    "batch as 3-D with 5 leads": ((np.stack([ECG[:5]] * 2),), {"sampling_rate": 500}, ValueError, "pass `lead_names`"),
    # dtype
    "bool array": ((ECG > 0.5,), {"sampling_rate": 500}, ValueError, "boolean"),
    "bool tensor": ((torch.from_numpy(ECG > 0.5),), {"sampling_rate": 500}, ValueError, "torch.bool"),
    "complex array": ((ECG.astype(np.complex128),), {"sampling_rate": 500}, ValueError, "complex"),
    "complex tensor": ((torch.from_numpy(ECG.astype(np.complex64)),), {"sampling_rate": 500}, ValueError, "complex"),
    "object array": ((ECG.astype(object),), {"sampling_rate": 500}, ValueError, "numeric"),
    "strings": (([["a", "b"], ["c", "d"]],), {"sampling_rate": 500}, ValueError, "numeric"),
    "datetime": ((np.zeros((12, 5000), dtype="datetime64[s]"),), {"sampling_rate": 500}, ValueError, "numeric"),
    # sampling rate
    "no rate": ((ECG,), {}, ValueError, "no sampling_rate given"),
    "negative rate": ((ECG,), {"sampling_rate": -3}, ValueError, "plausible range"),
    "zero rate": ((ECG,), {"sampling_rate": 0}, ValueError, "plausible range"),
    "1 MHz": ((ECG,), {"sampling_rate": 1e6}, ValueError, "plausible range"),
    "10 Hz": ((ECG,), {"sampling_rate": 10}, ValueError, "plausible range"),
    "NaN rate": ((ECG,), {"sampling_rate": float("nan")}, ValueError, "plausible range"),
    "inf rate": ((ECG,), {"sampling_rate": float("inf")}, ValueError, "plausible range"),
    "text rate": ((ECG,), {"sampling_rate": "fast"}, ValueError, "number of Hz"),
    "bool rate": ((ECG,), {"sampling_rate": True}, ValueError, "number of Hz"),
    "list rate": ((ECG,), {"sampling_rate": [500]}, ValueError, "number of Hz"),
    "dict rate contradicts": (({"signal": ECG, "sampling_rate": 250},), {"sampling_rate": 500}, ValueError,
                              "contradicts the dict's own sampling_rate 250"),
    "dict without rate": (({"signal": ECG},), {}, ValueError, "no sampling_rate given"),
    "dict without signal": (({"sampling_rate": 500},), {}, ValueError, "needs a 'signal' entry"),
    "dict misspelt key": (({"signal": ECG, "sample_rate": 500},), {}, TypeError, "did you mean 'sampling_rate'"),
    "dict leads contradict": (({"signal": ECG, "sampling_rate": 500, "lead_names": LEADS[::-1]},),
                              {"lead_names": LEADS}, ValueError, "contradicts the dict's own lead_names"),
    # lead names
    "11 names for 12 leads": ((ECG,), {"sampling_rate": 500, "lead_names": LEADS[:11]}, ValueError,
                              "11 lead_names .* 12 leads"),
    "13 names for 12 leads": ((ECG,), {"sampling_rate": 500, "lead_names": LEADS + ["V7"]}, ValueError,
                              "13 lead_names .* 12 leads"),
    "names for 3 of 8 leads": ((ECG[:8],), {"sampling_rate": 500, "lead_names": ["I", "II", "V1"]}, ValueError,
                               "3 lead_names .* 8 leads"),
    "one string as names": ((ECG,), {"sampling_rate": 500, "lead_names": "I,II"}, ValueError, "list of lead names"),
    "empty name": ((ECG,), {"sampling_rate": 500, "lead_names": [""] + LEADS[1:]}, ValueError, "non-empty strings"),
    "numbers as names": ((ECG,), {"sampling_rate": 500, "lead_names": list(range(12))}, ValueError,
                         "non-empty strings"),
    "duplicate names": ((ECG,), {"sampling_rate": 500, "lead_names": ["I"] * 12}, ValueError, "duplicates"),
    "unknown names": ((ECG,), {"sampling_rate": 500, "lead_names": [f"L{i}" for i in range(12)]}, ValueError,
                      "Unknown lead"),
    # call-time keywords
    "misspelt sampling_rate": ((ECG,), {"sampling_rte": 500}, TypeError, "did you mean 'sampling_rate'"),
    "misspelt lead_names": ((ECG,), {"sampling_rate": 500, "lead_name": LEADS}, TypeError,
                            "did you mean 'lead_names'"),
    "misspelt return_tensors": ((ECG,), {"sampling_rate": 500, "return_tensor": "pt"}, TypeError,
                                "did you mean 'return_tensors'"),
    "unsupported padding": ((ECG,), {"sampling_rate": 500, "padding": True}, TypeError, "'padding'"),
    # length
    "0.5 s": ((make_ecg(0.5),), {"sampling_rate": 500}, ValueError, "at least 1.0 s"),
    "1 sample": ((np.ones((12, 1)),), {"sampling_rate": 500}, ValueError, "at least 1.0 s"),
    "empty list": (([],), {"sampling_rate": 500}, ValueError, "list of records is empty"),
    # finiteness
    "all-NaN lead": ((np.where(np.arange(12)[:, None] == 4, np.nan, ECG),), {"sampling_rate": 500}, ValueError,
                     r"lead\(s\) \['aVL'\] contain no finite value"),
    "all-NaN record": ((np.full((12, 5000), np.nan),), {"sampling_rate": 500}, ValueError, "no finite value"),
    "all-inf record": ((np.full((12, 5000), np.inf),), {"sampling_rate": 500}, ValueError, "no finite value"),
}


@pytest.mark.parametrize("args, kwargs, error, match", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_feature_extractor_rejects_with_a_message_naming_the_problem(extractor, args, kwargs, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ECGQualityWarning)
        with pytest.raises(error, match=match):
            extractor(*args, **kwargs)


def test_values_beyond_float32_are_an_error_without_normalisation():
    with pytest.warns(ECGQualityWarning, match="implausibly large"), pytest.raises(ValueError, match="not finite"):
        TamerFeatureExtractor(normalization="none")(ECG * 1e39, sampling_rate=500)


def test_huge_samples_kept_are_an_error_not_nan_output():
    ecg = ECG.copy()
    ecg[0, 100], ecg[1, 200] = 1e308, -1e308
    with pytest.warns(ECGQualityWarning, match="kept"), pytest.raises(ValueError, match="not finite"):
        TamerFeatureExtractor(outlier_policy="keep")(ecg, sampling_rate=500)


def test_nan_policy_raise_rejects_one_nan():
    ecg = ECG.copy()
    ecg[3, 10] = np.nan
    with pytest.raises(ValueError, match=r"ECG #0: the ECG has 1 NaN/Inf sample\(s\) and nan_policy='raise'"):
        TamerFeatureExtractor(nan_policy="raise")(ecg, sampling_rate=500)


@pytest.mark.parametrize("option, value", [("normalization", "l2"), ("nan_policy", "drop"), ("outlier_policy", "cut")])
def test_unknown_extractor_options_are_rejected(option, value):
    with pytest.raises(ValueError, match=f"{option} must be one of"):
        TamerFeatureExtractor(**{option: value})


def test_the_error_names_the_record_in_a_batch(extractor):
    with pytest.raises(ValueError, match="ECG #2: the record lasts 0.500 s"):
        extractor([ECG, ECG, make_ecg(0.5)], sampling_rate=500)


# ----------------------------------------------------------------------------------------------------------------------
# Quality warnings: the record is prepared, flagged, and the answer stays sane


def _with(ecg, edit):
    ecg = ecg.copy()
    edit(ecg)
    return ecg


def _clip(ecg):
    np.clip(ecg, None, 0.3 * ecg.max(axis=1, keepdims=True), out=ecg)


WARNING_CASES = {
    "all zero": (np.zeros((12, 5000)), "every sample is zero"),
    "all zero int": (np.zeros((12, 5000), dtype=np.int16), "every sample is zero"),
    "constant": (np.full((12, 5000), 0.7), "flat line: every sample equals 0.7"),
    "one flat lead": (_with(ECG, lambda e: e.__setitem__(5, 0.2)), r"lead\(s\) \['aVF'\] are flat"),
    "three flat leads": (_with(ECG, lambda e: e.__setitem__(slice(6, 9), 0.0)), r"\['V1', 'V2', 'V3'\] are flat"),
    "clipped record": (_with(ECG, _clip), "look clipped"),
    "clipped lead": (_with(ECG, lambda e: np.clip(e[2], -0.05, 0.1, out=e[2])), r"\['III'\] look clipped"),
    "microvolt amplitude": (ECG * 1000, "implausibly large for millivolts"),
    "ADC counts": (np.round(ECG * 200).astype(np.int16) * 100, "implausibly large for millivolts"),
    "volt amplitude": (ECG / 1000, "implausibly small for millivolts"),
    "amplitude near float64's limit": (ECG * 1e300, "implausibly large for millivolts"),
    "near-flat noise": (1e-4 * np.random.default_rng(3).normal(size=(12, 5000)), "implausibly small"),
    "one 1e30 sample": (_with(ECG, lambda e: e.__setitem__((0, 2500), 1e30)), "far outside the record's range"),
    "one -1e30 sample": (_with(ECG, lambda e: e.__setitem__((7, 100), -1e30)), "far outside the record's range"),
    "+-1e308 samples": (_with(ECG, lambda e: (e.__setitem__((0, 1), 1e308), e.__setitem__((1, 2), -1e308))),
                        "far outside the record's range"),
    "electrode pop": (_with(ECG, lambda e: e.__setitem__((9, slice(3000, 3003)), 80.0)), "far outside"),
    "NaN samples": (_with(ECG, lambda e: e.__setitem__((2, slice(10, 20)), np.nan)),
                    r"10 NaN/Inf sample\(s\) in lead\(s\) \['III'\] were interpolated"),
    "inf sample": (_with(ECG, lambda e: e.__setitem__((11, 40), np.inf)), r"\['V6'\] were interpolated"),
    "-inf sample": (_with(ECG, lambda e: e.__setitem__((0, 40), -np.inf)), r"\['I'\] were interpolated"),
    "NaN at both ends": (_with(ECG, lambda e: (e.__setitem__((4, 0), np.nan), e.__setitem__((4, -1), np.nan))),
                         "were interpolated"),
}


@pytest.mark.parametrize("ecg, match", WARNING_CASES.values(), ids=WARNING_CASES.keys())
def test_degenerate_records_give_a_named_warning_and_a_sane_result(extractor, ecg, match):
    with pytest.warns(ECGQualityWarning, match="ECG #0: .*" + match):
        features = extractor(ecg, sampling_rate=500, return_quality=True)
    assert_sane(features["input_values"])
    quality = features["quality"][0]
    assert quality["ok"] is False
    assert any(re.search(match, issue) for issue in quality["issues"]), quality


@pytest.mark.parametrize("ecg, match", WARNING_CASES.values(), ids=WARNING_CASES.keys())
def test_strict_turns_every_quality_warning_into_an_error(extractor, ecg, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ECGQualityWarning)
        with pytest.raises(ValueError, match="ECG #0: .*" + match + ".*strict=True"):
            extractor(ecg, sampling_rate=500, strict=True)


def test_a_clean_record_has_no_quality_issue(extractor):
    features = prepared_without_quality_warnings(extractor, ECG, sampling_rate=500, return_quality=True)
    assert features["quality"] == [{"ok": True, "issues": []}]
    assert_sane(features["input_values"])


@pytest.mark.parametrize("policy", ["clip", "interpolate"])
@pytest.mark.parametrize("value", [1e30, -1e30, 1e6, 50.0, 1e308])
def test_one_corrupt_sample_cannot_flatten_the_record(policy, value):
    extractor = TamerFeatureExtractor(outlier_policy=policy)
    clean = extractor(ECG, sampling_rate=500)["input_values"][0]
    corrupt = ECG.copy()
    corrupt[3, 2000] = value
    with pytest.warns(ECGQualityWarning, match=r"1 sample\(s\) in lead\(s\) \['aVR'\]"):
        prepared = extractor(corrupt, sampling_rate=500)["input_values"][0]
    assert_sane(prepared)
    # the rest of the record keeps its shape: without the fix min-max maps everything but the spike to ~0
    assert prepared.std() > 0.3 * clean.std()
    assert np.corrcoef(prepared[[0, 1, 2, 4, 5]].ravel(), clean[[0, 1, 2, 4, 5]].ravel())[0, 1] > 0.99
    if policy == "interpolate":
        far = np.r_[0:1900, 2100:5000]  # away from the resampling filter's reach around the repaired sample
        np.testing.assert_allclose(prepared[:, far], clean[:, far], atol=0.02)


def test_keep_policy_leaves_the_outlier_and_warns():
    corrupt = ECG.copy()
    corrupt[3, 2000] = 1e6
    with pytest.warns(ECGQualityWarning, match="kept"):
        prepared = TamerFeatureExtractor(outlier_policy="keep")(corrupt, sampling_rate=500)["input_values"][0]
    assert prepared.std() < 0.05  # what the documented option trades away: the record is squashed


@pytest.mark.parametrize("seconds", [1, 1.5, 2, 5, 9, 9.5, 9.9, 10, 10.1, 11, 15, 30, 60, 120])
def test_records_from_1_to_120_seconds(extractor, seconds):
    ecg = make_ecg(seconds)
    if 9.8 <= seconds <= 10.2:
        features = prepared_without_quality_warnings(extractor, ecg, sampling_rate=500, return_quality=True)
        assert features["quality"][0]["ok"]
    else:
        match = "zero-padded" if seconds < 10 else r"only its first 10 s are prepared here \(`TamerFeatureExtractor"
        with pytest.warns(ECGQualityWarning, match=f"lasts {seconds:.1f} s.*{match}"):
            features = extractor(ecg, sampling_rate=500, return_quality=True)
        assert not features["quality"][0]["ok"]
    values = features["input_values"][0]
    assert_sane(values)
    if seconds >= 10:  # the first 10 s, whatever follows (the pipeline scores them all: tests/test_long_records.py)
        reference = make_ecg(seconds)[:, :5000]
        np.testing.assert_allclose(values, (reference - reference.min()) / np.ptp(reference), atol=1e-5)


def test_a_24_hour_record_only_converts_the_window_it_uses(extractor):
    """86 400 s x 500 Hz x 12 leads of int16 would be 4 GB as float64; only the first seconds are converted."""
    beats = np.round(ECG[1, :500] * 1000).astype(np.int16)  # one second of microvolts
    lead = np.tile(beats, 86_400)  # (43 200 000,) 86 MB
    holter = np.lib.stride_tricks.as_strided(lead, shape=(12, lead.size), strides=(0, lead.strides[0]))  # a view
    tracemalloc.start()
    try:
        with pytest.warns(ECGQualityWarning, match="lasts 86400.0 s; only its first 10 s"):
            values = extractor(holter, sampling_rate=500)["input_values"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated"
    assert_sane(values)


@pytest.mark.parametrize("rate", [20_000, 12_345.678])
def test_high_and_odd_rates_resample_in_bounded_memory(extractor, rate):
    ecg = np.random.default_rng(0).normal(size=(12, int(10 * rate)))  # 10 s, 19 MB as float64
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ECGQualityWarning)
            values = extractor(ecg, sampling_rate=rate)["input_values"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150e6, f"{peak / 1e6:.0f} MB allocated"
    assert_sane(values)


@pytest.mark.parametrize("rate", [100, 128, 250, 257, 360, 400, 1000, 1024, 2000, 1234.567, 499.9, 20_000])
def test_odd_and_common_rates_resample_to_the_same_record(extractor, rate):
    """Rates are resampled with a small filter (ratio denominators <= 10 000) to (nearly) the 500 Hz values."""
    up, down = resampling_ratio(rate, 500)
    assert max(up, down) <= 100_000
    assert abs(up / down - 500 / rate) < 1e-6 * 500 / rate
    time = np.arange(int(round(10 * rate))) / rate
    slow = np.sin(2 * np.pi * 1.3 * time)[None] * np.linspace(0.5, 1.5, 12)[:, None]  # (12, T), below every Nyquist
    reference = np.sin(2 * np.pi * 1.3 * np.arange(5000) / 500)[None] * np.linspace(0.5, 1.5, 12)[:, None]
    values = prepared_without_quality_warnings(extractor, slow, sampling_rate=rate)["input_values"][0]
    expected = (reference - reference.min()) / np.ptp(reference)
    np.testing.assert_allclose(values[:, 200:4800], expected[:, 200:4800], atol=0.02)


# ----------------------------------------------------------------------------------------------------------------------
# dtypes that are converted, and lead layouts


@pytest.mark.parametrize("convert", [
    lambda e: e.astype(np.float64), lambda e: e.astype(np.float32), lambda e: e.astype(np.float16),
    lambda e: torch.from_numpy(e), lambda e: torch.from_numpy(e).to(torch.bfloat16),
    lambda e: torch.from_numpy(e).half(), lambda e: e.tolist(), lambda e: e.T.copy(), lambda e: np.asfortranarray(e),
], ids=["float64", "float32", "float16", "tensor64", "bfloat16", "half", "list", "time-major", "fortran"])
def test_float_types_and_layouts_give_the_same_values(extractor, convert):
    reference = extractor(ECG, sampling_rate=500)["input_values"][0]
    values = prepared_without_quality_warnings(extractor, convert(ECG), sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(values, reference, atol=0.01)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint16])
def test_integer_samples_are_converted(extractor, dtype):
    counts = np.round(ECG * 1000) + (2000 if dtype == np.uint16 else 0)  # microvolts (unsigned: offset baseline)
    with pytest.warns(ECGQualityWarning, match="implausibly large for millivolts"):
        values = extractor(counts.astype(dtype), sampling_rate=500)["input_values"][0]
    expected = extractor(counts / 1000, sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(values, expected, atol=1e-5)


def test_missing_limb_leads_are_derived_without_a_warning(extractor):
    keep = [0, 1, 6, 7, 8, 9, 10, 11]
    names = [LEADS[i] for i in keep]
    values = prepared_without_quality_warnings(extractor, ECG[keep], sampling_rate=500, lead_names=names)
    assert_sane(values["input_values"])


def test_missing_chest_leads_are_zero_filled_with_a_warning(extractor):
    with pytest.warns(ECGQualityWarning, match=r"\['V1', 'V2', 'V3', 'V4', 'V5', 'V6'\] are missing"):
        features = extractor(ECG[:6], sampling_rate=500, lead_names=LEADS[:6], return_quality=True)
    assert not features["quality"][0]["ok"]
    assert_sane(features["input_values"])


@pytest.mark.parametrize("names", [
    ["DI", "DII", "DIII"] + LEADS[3:], [name.lower() for name in LEADS], [name.upper() for name in LEADS],
    [f" {name} " for name in LEADS],
], ids=["DI-DII-DIII", "lower", "upper", "spaces"])
def test_renamed_leads_are_matched(extractor, names):
    reference = extractor(ECG, sampling_rate=500)["input_values"][0]
    values = prepared_without_quality_warnings(extractor, ECG, sampling_rate=500, lead_names=names)
    np.testing.assert_allclose(values["input_values"][0], reference, atol=1e-6)


def test_dataframe_columns_are_the_lead_names(extractor):
    pandas = pytest.importorskip("pandas")
    reference = extractor(ECG, sampling_rate=500)["input_values"][0]
    order = [11, 0, 5, 3, 1, 2, 4, 6, 7, 8, 9, 10]
    shuffled = pandas.DataFrame(ECG[order].T, columns=[LEADS[i] for i in order])
    values = prepared_without_quality_warnings(extractor, shuffled, sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(values, reference, atol=1e-6)
    as_dict = extractor({"signal": shuffled, "sampling_rate": 500})["input_values"][0]
    np.testing.assert_allclose(as_dict, reference, atol=1e-6)
    with pytest.raises(ValueError, match="contradict the DataFrame's columns"):
        extractor(shuffled, sampling_rate=500, lead_names=LEADS)
    with pytest.raises(ValueError, match="Unknown lead"):
        extractor(pandas.DataFrame(ECG.T, columns=[f"ch{i}" for i in range(12)]), sampling_rate=500)


def test_dict_rate_agreeing_with_the_call_is_accepted(extractor):
    values = extractor({"signal": ECG, "sampling_rate": 500}, sampling_rate=500.0)["input_values"]
    np.testing.assert_allclose(values, extractor(ECG, sampling_rate=500)["input_values"], atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Processor: the same checks, through the feature extractor


@pytest.mark.parametrize("kwargs, error, match", [
    ({"ecg": ECG > 0, "sampling_rate": 500}, ValueError, "boolean"),
    ({"ecg": ECG, "sampling_rte": 500}, TypeError, "did you mean 'sampling_rate'"),
    ({"ecg": ECG, "sampling_rate": 500, "lead_names": LEADS[:10]}, ValueError, "10 lead_names"),
    ({"ecg": ECG, "sampling_rate": 500, "text": ""}, None, None),
    ({"ecg": {"signal": ECG, "sampling_rate": 250}, "sampling_rate": 500}, ValueError, "contradicts"),
    ({"ecg": ECG, "sampling_rate": 500, "text": [1, 2]}, ValueError, "string or a non-empty list"),
    ({"ecg": ECG, "sampling_rate": 500, "text": []}, ValueError, "string or a non-empty list"),
    ({}, ValueError, "needs `ecg`, `text`"),
])
def test_processor_rejects_bad_input(processor, kwargs, error, match):
    if error is None:
        processor(**kwargs)  # an empty report is a report
        return
    with pytest.raises(error, match=match):
        processor(**kwargs)


def test_processor_warns_about_a_flat_record_and_strict_refuses_it(processor):
    with pytest.warns(ECGQualityWarning, match="every sample is zero"):
        batch = processor(ecg=np.zeros((12, 5000)), text="sinus rhythm", sampling_rate=500, return_quality=True)
    assert batch["quality"] == [{"ok": False, "issues": ["every sample is zero (no signal)."]}]
    assert torch.isfinite(batch["input_values"]).all()
    with pytest.raises(ValueError, match="strict=True"):
        processor(ecg=np.zeros((12, 5000)), text="sinus rhythm", sampling_rate=500, strict=True)


# ----------------------------------------------------------------------------------------------------------------------
# Pipeline: transformers' zero-shot conventions and a quality entry per record


def labels_and_scores(result):
    return {entry["label"]: entry["score"] for entry in result}


PIPELINE_ERRORS = {
    "multi_label as text": ({"candidate_labels": LABELS, "multi_label": "false"}, ValueError,
                            "multi_label must be True or False"),
    "multi_label as int": ({"candidate_labels": LABELS, "multi_label": 1}, ValueError, "multi_label must be"),
    "strict as text": ({"candidate_labels": LABELS, "strict": "yes"}, ValueError, "strict must be"),
    "one label, softmax": ({"candidate_labels": ["sinus rhythm"]}, ValueError, "pass multi_label=True"),
    "one label as text": ({"candidate_labels": "sinus rhythm"}, ValueError, "pass multi_label=True"),
    "empty labels": ({"candidate_labels": []}, ValueError, "empty"),
    "only commas": ({"candidate_labels": " , ,"}, ValueError, "empty"),
    "label not text": ({"candidate_labels": ["a", 3]}, ValueError, "non-empty strings"),
    "blank label": ({"candidate_labels": ["a", "  "]}, ValueError, "non-empty strings"),
    "labels as int": ({"candidate_labels": 3}, ValueError, "list of strings"),
    "labels as set": ({"candidate_labels": {"a", "b"}}, ValueError, "list of strings"),
    "duplicate labels": ({"candidate_labels": "a, b, a"}, ValueError, "duplicates"),
    "no labels": ({}, ValueError, "candidate_labels is required"),
    "descriptions match no label": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": {"afib": "x"}},
                                    ValueError, "None of the label_descriptions keys"),
    "description None": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": {"AFIB": None}}, ValueError,
                         "non-empty string"),
    "description empty": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": {"AFIB": " "}}, ValueError,
                          "non-empty string"),
    "description number": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": {"AFIB": 123}}, ValueError,
                           "non-empty string"),
    "description list": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": {"AFIB": ["a", "b"]}},
                         ValueError, "non-empty string"),
    "descriptions as list": ({"candidate_labels": ["AFIB", "SR"], "label_descriptions": ["a", "b"]}, ValueError,
                             "must be a dict"),
    "template without {}": ({"candidate_labels": LABELS, "hypothesis_template": "an ecg"}, ValueError,
                            "exactly once"),
    "template twice {}": ({"candidate_labels": LABELS, "hypothesis_template": "{} or {}"}, ValueError,
                          "not a template with one"),
    "template named field": ({"candidate_labels": LABELS, "hypothesis_template": "{label}"}, ValueError,
                             "is not a template"),
    "template not text": ({"candidate_labels": LABELS, "hypothesis_template": 5}, ValueError, "must be a string"),
    "negative template": ({"candidate_labels": LABELS, "multi_label": True, "negative_template": "no"}, ValueError,
                          "negative_template 'no' must contain"),
    "misspelt keyword": ({"candidate_label": LABELS}, TypeError, "candidate_label"),
    "bad top_k": ({"candidate_labels": LABELS, "top_k": 0}, ValueError, "top_k"),
    "bad function_to_apply": ({"candidate_labels": LABELS, "function_to_apply": "softmax"}, ValueError,
                              "function_to_apply"),
}


@pytest.mark.parametrize("kwargs, error, match", PIPELINE_ERRORS.values(), ids=PIPELINE_ERRORS.keys())
def test_pipeline_rejects_bad_labels_templates_and_options(classifier, kwargs, error, match):
    with pytest.raises(error, match=match):
        classifier(ECG, sampling_rate=500, **kwargs)


@pytest.mark.parametrize("inputs, kwargs, error, match", [
    ([], {"sampling_rate": 500}, ValueError, "list of records is empty"),
    (ECG > 0, {"sampling_rate": 500}, ValueError, "boolean"),
    (ECG.astype(np.complex64), {"sampling_rate": 500}, ValueError, "complex"),
    (ECG, {"sampling_rate": 500, "lead_names": LEADS[:11]}, ValueError, "11 lead_names"),
    ({"signal": ECG, "sampling_rate": 250}, {"sampling_rate": 500}, ValueError, "contradicts"),
    (ECG, {"sampling_rate": 5}, ValueError, "plausible range"),
    (make_ecg(0.5), {"sampling_rate": 500}, ValueError, "at least 1.0 s"),
    (np.zeros((12, 5000)), {"sampling_rate": 500, "strict": True}, ValueError, "every sample is zero"),
    ("nowhere.hea", {}, FileNotFoundError, "nowhere.hea"),
    (None, {"sampling_rate": 500}, TypeError, "An ECG must be"),
])
def test_pipeline_rejects_bad_records(classifier, inputs, kwargs, error, match):
    with pytest.raises(error, match=match):
        classifier(inputs, candidate_labels=LABELS, **kwargs)


def test_comma_separated_labels_are_split_like_transformers(classifier):
    from_text = classifier(ECG, sampling_rate=500, candidate_labels="atrial fibrillation, sinus rhythm")
    from_list = classifier(ECG, sampling_rate=500, candidate_labels=["atrial fibrillation", "sinus rhythm"])
    assert labels_and_scores(from_text) == pytest.approx(labels_and_scores(from_list))
    assert all(entry["score"] < 1.0 for entry in from_text)


def test_one_label_is_scored_on_its_own_with_multi_label(classifier):
    result = classifier(ECG, sampling_rate=500, candidate_labels="sinus rhythm", multi_label=True)
    assert [entry["label"] for entry in result] == ["sinus rhythm"] and 0.0 < result[0]["score"] < 1.0


def test_descriptions_for_some_labels_are_used_and_the_rest_encoded_as_they_are(classifier):
    partial = classifier(ECG, sampling_rate=500, candidate_labels=["AFIB", "sinus rhythm"], function_to_apply="none",
                         label_descriptions={"AFIB": "atrial fibrillation", "LBBB": "left bundle branch block"})
    plain = classifier(ECG, sampling_rate=500, candidate_labels=["atrial fibrillation", "sinus rhythm"],
                       function_to_apply="none")
    assert labels_and_scores(partial)["AFIB"] == pytest.approx(labels_and_scores(plain)["atrial fibrillation"])


def test_every_entry_carries_its_records_quality(classifier):
    flat = np.zeros((12, 5000))
    short = make_ecg(3, seed=1)
    with pytest.warns(ECGQualityWarning) as caught:
        results = classifier([ECG, flat, short, ECG * 1000], sampling_rate=500, candidate_labels=LABELS, batch_size=2)
    messages = [str(warning.message) for warning in caught if warning.category is ECGQualityWarning]
    assert any("every sample is zero" in message for message in messages)
    qualities = [result[0]["quality"] for result in results]
    assert all(entry["quality"] == result[0]["quality"] for result in results for entry in result)
    assert qualities[0] == {"ok": True, "issues": []}
    assert qualities[1] == {"ok": False, "issues": ["every sample is zero (no signal)."]}
    assert not qualities[2]["ok"] and "zero-padded" in qualities[2]["issues"][0]
    assert not qualities[3]["ok"] and "implausibly large" in qualities[3]["issues"][0]
    for result in results:
        assert sum(entry["score"] for entry in result) == pytest.approx(1.0, abs=1e-5)


def test_pipeline_accepts_a_dataframe_by_lead_name(classifier):
    pandas = pytest.importorskip("pandas")
    order = [3, 1, 0, 2, 4, 5, 11, 10, 9, 8, 7, 6]
    frame = pandas.DataFrame(ECG[order].T, columns=[LEADS[i] for i in order])
    from_frame = classifier(frame, sampling_rate=500, candidate_labels=LABELS)
    from_array = classifier(ECG, sampling_rate=500, candidate_labels=LABELS)
    assert labels_and_scores(from_frame) == pytest.approx(labels_and_scores(from_array), abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# WFDB files: broken headers and data files


@pytest.fixture
def wfdb_dir(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=ECG.T, fmt=["16"] * 12,
                write_dir=str(tmp_path))
    lines = (tmp_path / "rec.hea").read_text().splitlines()

    def variant(name, record_line=None, signal_lines=None, data=True):
        signals = lines[1:] if signal_lines is None else signal_lines
        header = [record_line or lines[0].replace("rec", name, 1)] + signals
        (tmp_path / f"{name}.hea").write_text("\n".join(line.replace("rec.dat", f"{name}.dat") for line in header))
        if data:
            (tmp_path / f"{name}.dat").write_bytes((tmp_path / "rec.dat").read_bytes())
        return str(tmp_path / f"{name}.hea")

    return tmp_path, variant


def _truncate_data(header_path: str) -> str:
    data = header_path[: -len(".hea")] + ".dat"
    content = open(data, "rb").read()
    open(data, "wb").write(content[: len(content) // 3 + 1])
    return header_path


@pytest.mark.parametrize("make, kwargs, error, match", [
    (lambda d, v: _truncate_data(v("truncated")), {}, ValueError, "Could not read WFDB record .*truncated"),
    (lambda d, v: v("nofs", record_line="nofs 12"), {}, ValueError, "no readable sampling frequency .*250 Hz"),
    (lambda d, v: v("badfs", record_line="badfs 12 fast 5000"), {}, ValueError, "found 'fast'"),
    (lambda d, v: v("zerofs", record_line="zerofs 12 0 5000"), {}, ValueError, "plausible range"),
    (lambda d, v: v("nodat", data=False), {}, ValueError, "Could not read WFDB record"),
    (lambda d, v: v("garbage", record_line="\x00\x01 not a header"), {}, ValueError, "no readable sampling"),
    (lambda d, v: v("fewsignals", record_line="fewsignals 12 500 5000", signal_lines=[]), {}, ValueError,
     "Could not read WFDB record"),
    (lambda d, v: v("sixof12", signal_lines=open(v("full")).read().splitlines()[1:7]), {}, ValueError,
     "Could not read WFDB record"),
    (lambda d, v: v("onesignal", record_line="onesignal 1 500 5000"), {}, ValueError, "Could not read WFDB record"),
    (lambda d, v: str(d / "absent.hea"), {}, FileNotFoundError, r"absent\.hea"),
    (lambda d, v: str(d / "absent.mat"), {}, FileNotFoundError, r"header not found: .*absent\.hea$"),
    (lambda d, v: str(d / "rec.hea"), {"sampling_rate": 250}, ValueError, "contradicts the 500.0 Hz in the header"),
])
def test_broken_wfdb_records_are_clear_errors(extractor, wfdb_dir, make, kwargs, error, match):
    directory, variant = wfdb_dir
    with pytest.raises(error, match=match):
        extractor(make(directory, variant), **kwargs)


@pytest.mark.parametrize("suffix", [".hea", ".dat", ""])
def test_a_wfdb_record_is_found_from_any_of_its_file_names(extractor, wfdb_dir, suffix):
    directory, _ = wfdb_dir
    values = prepared_without_quality_warnings(extractor, str(directory / f"rec{suffix}"))["input_values"]
    assert_sane(values)


def test_the_pipeline_names_the_real_header_of_a_missing_mat_record(classifier, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'[^']*missing\.hea'"):
        classifier(str(tmp_path / "missing.mat"), candidate_labels=LABELS)

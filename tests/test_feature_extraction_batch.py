"""The feature extractor's vectorised path for uniform batches ((B, 12, 5000) at 500 Hz: training batches, stacks of
10 s records) gives exactly what record-by-record preparation gives: the same values, the same quality issues and
warnings; and its outlier screen decides exactly as the per-record outlier test."""

import warnings

import numpy as np
import pytest

from tamer_hf import TamerFeatureExtractor
from tamer_hf.modeling.ecg_validation import (ECGQualityWarning, QualityReport, check_degenerate, outlier_mask,
                                              screen_batch)


def ecg_like(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    time = np.arange(5000) / 500
    beats = np.sin(np.pi * rng.uniform(0.9, 1.6, (count, 1, 1)) * time) ** 40
    return (beats * rng.uniform(0.3, 2.0, (count, 12, 1)) + 0.05 * rng.normal(size=(count, 12, 5000)))


def troubled_batch() -> np.ndarray:
    batch = ecg_like(10, seed=0)
    batch[1, 3, 200:260] = np.nan  # repaired by interpolation
    batch[2, 0, 1234] = 1e6  # one corrupt sample: an outlier, clipped
    batch[3, 5] = 0.7  # a flat lead
    batch[4, 7] = np.clip(batch[4, 7], None, 0.2)  # a clipped lead
    batch[5] *= 1000  # microvolts, not millivolts
    batch[6] = 0.0  # no signal
    batch[8, :, ::50] += 40.0  # 2 % spikes: not outliers by the 99th-percentile rule, but an odd amplitude
    return batch


def prepare(extractor, ecg):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = extractor(ecg, sampling_rate=500, return_quality=True)
    messages = [str(warning.message) for warning in caught if issubclass(warning.category, ECGQualityWarning)]
    return features["input_values"], features["quality"], messages


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_a_uniform_batch_is_prepared_exactly_as_record_by_record(dtype):
    extractor = TamerFeatureExtractor()
    batch = troubled_batch()
    if dtype == np.int16:
        batch = np.nan_to_num(batch * 100, nan=0.0, posinf=30000).clip(-30000, 30000)
    batch = batch.astype(dtype)
    values, quality, messages = prepare(extractor, batch)  # the vectorised path
    one_by_one = [prepare(extractor, record[None]) for record in batch]  # a batch of one: a list path for comparison
    listed_values, listed_quality, listed_messages = prepare(extractor, list(batch))  # the record-by-record path
    np.testing.assert_array_equal(values, listed_values)
    assert quality == listed_quality
    assert messages == listed_messages
    assert sum(not entry["ok"] for entry in quality) >= 5  # the troubles were found, in both paths
    for index, (single_values, single_quality, _) in enumerate(one_by_one):
        np.testing.assert_array_equal(single_values[0], values[index])
        assert single_quality[0]["issues"] == quality[index]["issues"]


def test_strict_names_the_record_in_a_uniform_batch():
    batch = ecg_like(3, seed=1)
    batch[2, 4] = 0.5
    with pytest.raises(ValueError, match=r"ECG #2: lead\(s\) \['aVL'\] are flat"):
        TamerFeatureExtractor()(batch, sampling_rate=500, strict=True)


@pytest.mark.parametrize("distribution", ["ecg", "normal", "cauchy", "spiky", "steps", "quantised"])
def test_the_outlier_screen_decides_exactly_as_the_per_record_test(distribution):
    rng = np.random.default_rng(7)
    count = 24
    batch = {
        "ecg": lambda: ecg_like(count, seed=3),
        "normal": lambda: rng.normal(size=(count, 12, 5000)),
        "cauchy": lambda: rng.standard_cauchy(size=(count, 12, 5000)),  # heavy tails: real outliers in some records
        "spiky": lambda: ecg_like(count, seed=4)
        + (rng.random((count, 12, 5000)) < 2e-4) * rng.uniform(5, 80, (count, 12, 1)),
        "steps": lambda: np.repeat(rng.integers(-3, 4, (count, 12, 50)), 100, axis=2).astype(float),
        "quantised": lambda: np.round(ecg_like(count, seed=5) * 8) / 8,
    }[distribution]()
    repair, suspect = screen_batch(batch.astype(np.float64))
    exact_repair = np.array([outlier_mask(record)[0].any() for record in batch])
    np.testing.assert_array_equal(repair, exact_repair)
    if distribution in ("cauchy", "spiky"):
        assert exact_repair.any()  # the screen is not vacuous: it met real outliers
    for record, flagged in zip(batch, suspect):  # no record escapes check_degenerate that it would flag
        report = QualityReport("x", warn=False)
        check_degenerate(record, [str(lead) for lead in range(12)], report)
        assert flagged or not report.issues

"""TamerFeatureExtractor / TamerProcessor: layouts, rates, WFDB files, lead names, NaN policy, errors, real records."""

import numpy as np
import pytest
import scipy.io
import scipy.signal
import torch
import wfdb

from tamer_hf import CANONICAL_LEADS, TamerFeatureExtractor, TamerModel
from tamer_hf.modeling.feature_extraction_tamer import resample_poly
from tamer_hf.testing_utils import physionet_samples_dir, tiny_config

SAMPLES = physionet_samples_dir()
MIMIC_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


def band_limited_ecg(rate: float, seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """(12, T) sum of sinusoids below 40 Hz (mV), sampled at `rate` from the same continuous function."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(round(rate * seconds))) / rate
    freqs = rng.uniform(0.5, 40, size=(12, 6, 1))
    amps = rng.uniform(0.05, 0.5, size=(12, 6, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(12, 6, 1))
    return (amps * np.sin(2 * np.pi * freqs * time + phases)).sum(axis=1)


@pytest.fixture(scope="module")
def extractor():
    return TamerFeatureExtractor()


@pytest.mark.parametrize("up,down", [(2, 1), (5, 4), (1, 2), (500, 257), (3, 7)])
def test_polyphase_resampler_matches_scipy(up, down):
    signal = np.random.default_rng(up * 31 + down).normal(size=(3, 1201))
    np.testing.assert_allclose(resample_poly(signal, up, down), scipy.signal.resample_poly(signal, up, down, axis=-1), atol=1e-10)


def test_same_values_from_500hz_channel_first_250hz_time_major_and_a_wfdb_file(extractor, tmp_path):
    ecg_500 = band_limited_ecg(500)
    ecg_250 = band_limited_ecg(250)
    wfdb.wrsamp(
        "rec", fs=250, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS), p_signal=ecg_250.T,
        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path),
    )
    reference = extractor(ecg_500, sampling_rate=500)["input_values"][0]
    time_major = extractor(ecg_250.T, sampling_rate=250)["input_values"][0]
    from_file = extractor(str(tmp_path / "rec.hea"))["input_values"][0]
    assert reference.shape == time_major.shape == from_file.shape == (12, 5000)
    interior = slice(100, 4900)  # the resampling filter sees zeros beyond both ends of the record
    np.testing.assert_allclose(time_major[:, interior], reference[:, interior], atol=5e-3)
    np.testing.assert_allclose(from_file[:, interior], reference[:, interior], atol=5e-3)
    assert np.abs(time_major - reference).mean() < 2e-3


def test_minmax_normalisation_is_global_over_all_leads(extractor):
    ecg = band_limited_ecg(500, seed=1)
    values = extractor(ecg, sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(values, (ecg - ecg.min()) / (ecg.max() - ecg.min() + 1e-8), rtol=1e-5, atol=1e-6)
    zscore = TamerFeatureExtractor(normalization="zscore")(ecg, sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(zscore.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(zscore.std(axis=1), 1, atol=1e-4)


def test_leads_are_reordered_by_name(extractor):
    ecg = band_limited_ecg(500, seed=2)
    mimic_order = ecg[[CANONICAL_LEADS.index(name) for name in MIMIC_LEADS]]
    reordered = extractor(mimic_order, sampling_rate=500, lead_names=MIMIC_LEADS)["input_values"]
    np.testing.assert_allclose(reordered, extractor(ecg, sampling_rate=500)["input_values"], atol=1e-6)


def test_missing_limb_leads_are_derived_and_other_missing_leads_zero_filled():
    ecg = band_limited_ecg(500, seed=3)
    lead_i, lead_ii = ecg[0], ecg[1]
    ecg[2], ecg[3], ecg[4], ecg[5] = lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2
    raw = TamerFeatureExtractor(normalization="none")
    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    derived = raw(ecg[[0, 1, 6, 7, 8, 9, 10, 11]], sampling_rate=500, lead_names=eight)["input_values"][0]
    np.testing.assert_allclose(derived, ecg, atol=1e-5)
    no_v6 = raw(ecg[:11], sampling_rate=500, lead_names=list(CANONICAL_LEADS[:11]))["input_values"][0]
    np.testing.assert_allclose(no_v6[:11], ecg[:11], atol=1e-5)
    assert np.all(no_v6[11] == 0)


def test_isolated_nans_are_interpolated_linearly():
    ecg = band_limited_ecg(500, seed=4)
    broken = ecg.copy()
    broken[3, 1000:1010] = np.nan
    broken[7, 20] = np.inf
    raw = TamerFeatureExtractor(normalization="none")
    repaired = raw(broken, sampling_rate=500)["input_values"][0]
    expected = np.interp(np.arange(1000, 1010), [999, 1010], ecg[3, [999, 1010]])
    np.testing.assert_allclose(repaired[3, 1000:1010], expected, rtol=1e-5)
    assert np.isfinite(repaired).all()
    with pytest.raises(ValueError, match="NaN/Inf"):
        TamerFeatureExtractor(nan_policy="raise")(broken, sampling_rate=500)


def test_records_are_cropped_to_the_first_ten_seconds_or_zero_padded():
    raw = TamerFeatureExtractor(normalization="none")
    long = band_limited_ecg(500, seconds=12, seed=5)
    np.testing.assert_allclose(raw(long, sampling_rate=500)["input_values"][0], long[:, :5000], atol=1e-6)
    short = band_limited_ecg(500, seconds=8, seed=5)
    padded = raw(short, sampling_rate=500)["input_values"][0]
    np.testing.assert_allclose(padded[:, :4000], short, atol=1e-6)
    assert np.all(padded[:, 4000:] == 0)


def test_batches_of_different_lengths_layouts_and_types():
    extractor = TamerFeatureExtractor()
    first, second = band_limited_ecg(500, seconds=10, seed=6), band_limited_ecg(500, seconds=7, seed=7)
    batch = extractor([first, torch.from_numpy(second)], sampling_rate=500, return_tensors="pt")["input_values"]
    assert batch.shape == (2, 12, 5000) and batch.dtype == torch.float32
    np.testing.assert_allclose(batch[1].numpy(), extractor(second, sampling_rate=500)["input_values"][0], atol=1e-6)
    stacked = extractor(np.stack([first, first]).transpose(0, 2, 1), sampling_rate=500)["input_values"]
    np.testing.assert_allclose(stacked[1], extractor(first, sampling_rate=500)["input_values"][0], atol=1e-6)
    as_dict = extractor({"signal": first.tolist(), "sampling_rate": 500})["input_values"]
    np.testing.assert_allclose(as_dict[0], stacked[0], atol=1e-6)


def test_returned_spectrogram_is_the_models_spectrogram(extractor):
    prepared = extractor(band_limited_ecg(500, seed=8), sampling_rate=500, return_spectrogram=True, return_tensors="pt")
    model = TamerModel(tiny_config())
    torch.testing.assert_close(prepared["spectrogram"], model.spectrogram(prepared["input_values"]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda fe: fe(np.zeros((12, 5000))), "no sampling_rate given"),
        (lambda fe: fe(np.zeros(5000), sampling_rate=500), "2 dimensions"),
        (lambda fe: fe(np.zeros((2, 2, 12, 5000)), sampling_rate=500), "got 4 dimension"),
        (lambda fe: fe([["a", "b"], ["c", "d"]], sampling_rate=500), "must be numeric"),
        (lambda fe: fe(np.zeros((12, 0)), sampling_rate=500), "empty"),
        (lambda fe: fe(np.zeros((12, 100)), sampling_rate=500), "at least 1.0 s"),
        (lambda fe: fe(np.zeros((12, 5000)), sampling_rate=-3), "plausible range"),
        (lambda fe: fe(np.zeros((12, 5000)), sampling_rate="fast"), "number of Hz"),
        (lambda fe: fe(np.zeros((8, 5000)), sampling_rate=500), "pass `lead_names`"),
        (lambda fe: fe(np.zeros((12, 5000)), sampling_rate=500, lead_names=["X"] * 12), "duplicates"),
        (lambda fe: fe(np.zeros((12, 5000)), sampling_rate=500, lead_names=[f"L{i}" for i in range(12)]), "Unknown lead"),
        (lambda fe: fe("/nonexistent/record.hea"), "header not found"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_the_problem(extractor, call, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        call(extractor)


def test_an_all_nan_lead_is_rejected_by_name(extractor):
    ecg = band_limited_ecg(500, seed=9)
    ecg[4] = np.nan
    with pytest.raises(ValueError, match=r"ECG #0: lead\(s\) \['aVL'\] contain no finite value"):
        extractor(ecg, sampling_rate=500)
    zeroed = TamerFeatureExtractor(nan_policy="zero")(ecg, sampling_rate=500)["input_values"][0]
    assert np.isfinite(zeroed).all()


def test_processor_round_trip_keeps_extractor_settings(tmp_path):
    from tamer_hf import TamerProcessor
    from tamer_hf.testing_utils import tiny_tokenizer

    processor = TamerProcessor(TamerFeatureExtractor(normalization="zscore", nan_policy="raise"), tiny_tokenizer(), max_text_length=32)
    processor.save_pretrained(tmp_path)
    reloaded = TamerProcessor.from_pretrained(tmp_path)
    assert reloaded.feature_extractor.normalization == "zscore" and reloaded.feature_extractor.nan_policy == "raise"
    assert reloaded.max_text_length == 32
    ecg = band_limited_ecg(500, seed=10)
    first = processor(ecg=ecg, text="sinus rhythm. normal ecg.", sampling_rate=500)
    second = reloaded(ecg=ecg, text="sinus rhythm. normal ecg.", sampling_rate=500)
    for key in ("input_values", "input_ids", "attention_mask"):
        torch.testing.assert_close(first[key], second[key])
    with pytest.raises(ValueError, match="needs `ecg`, `text`"):
        processor()


@pytest.mark.skipif(not (SAMPLES / "georgia").is_dir(), reason="physionet-samples not available")
def test_real_georgia_wfdb_records():
    extractor = TamerFeatureExtractor()
    headers = sorted((SAMPLES / "georgia").glob("*.hea"))
    assert len(headers) >= 10
    values = extractor([str(path) for path in headers], return_tensors="np")["input_values"]
    assert values.shape == (len(headers), 12, 5000) and np.isfinite(values).all()
    assert values.min() >= 0 and values.max() <= 1
    signal, fields = wfdb.rdsamp(str(headers[0])[:-4])
    expected = extractor(signal, sampling_rate=fields["fs"], lead_names=fields["sig_name"])["input_values"][0]
    np.testing.assert_allclose(values[0], expected, atol=1e-6)


@pytest.mark.skipif(not (SAMPLES / "cpsc2018").is_dir(), reason="physionet-samples not available")
def test_real_cpsc2018_records():
    extractor = TamerFeatureExtractor()
    for path in sorted((SAMPLES / "cpsc2018").glob("*.mat")):
        data = scipy.io.loadmat(path)["ECG"]["data"][0, 0]  # (12, N) mV at 500 Hz, leads in canonical order
        values = extractor(data, sampling_rate=500)["input_values"][0]
        assert values.shape == (12, 5000) and np.isfinite(values).all()
        keep = min(data.shape[1], 5000)
        span = data[:, :5000].max() - data[:, :5000].min()
        np.testing.assert_allclose(values[:, :keep] * span, data[:, :keep] - data[:, :5000].min(), atol=1e-3 * span)

"""One copy of each signal helper: the dataset builders and the feature extractor prepare a record identically (lead
matching with aliases, NaN repair, polyphase resampling, crop/pad) and read WFDB physical units the same way."""

import numpy as np
import wfdb

from datasets_scripts.common import LEADS, read_wfdb, standardize_signal
from tamer_hf import TamerFeatureExtractor
from tamer_hf.modeling.feature_extraction_tamer import read_wfdb as read_wfdb_in_extractor


def shuffled_record(fs=250, seconds=12):
    """(12, T) mV at `fs` in a scrambled lead order, CODE's DI/DII/DIII spellings, a short NaN gap in V2."""
    rng = np.random.default_rng(0)
    order = [5, 0, 11, 2, 7, 1, 9, 3, 10, 4, 8, 6]
    names = [{"I": "DI", "II": "DII", "III": "DIII"}.get(LEADS[i], LEADS[i]) for i in order]
    signal = rng.normal(0, 0.3, (12, int(fs * seconds))).cumsum(axis=1) / 20
    signal[names.index("V2"), 100:110] = np.nan
    return signal, names


def test_builders_and_the_feature_extractor_prepare_a_record_identically():
    signal, names = shuffled_record()
    built = standardize_signal(signal, names, fs=250)  # (12, 5000) float32 mV
    extractor = TamerFeatureExtractor(normalization="none")
    prepared = extractor(signal, sampling_rate=250, lead_names=names, return_tensors="np")["input_values"][0]
    assert built.shape == prepared.shape == (12, 5000) and np.isfinite(built).all()
    np.testing.assert_allclose(built, prepared, rtol=0, atol=1e-5)  # float32 vs float64 arithmetic only
    v1 = names.index("V1")
    np.testing.assert_allclose(built[LEADS.index("V1"), ::2], signal[v1, :2500], atol=0.02)  # 250 -> 500 Hz


def test_wfdb_units_are_millivolts_in_both_readers(tmp_path):
    signal_mv = np.random.default_rng(1).normal(0, 0.2, (1000, 12))
    wfdb.wrsamp("rec", fs=500, units=["uV"] * 12, sig_name=list(LEADS), p_signal=signal_mv * 1000, fmt=["212"] * 12,
                adc_gain=[1.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))  # format 212: not the fast path
    built, names, fs = read_wfdb(tmp_path / "rec")
    extracted, rate, _ = read_wfdb_in_extractor(tmp_path / "rec")
    assert names == list(LEADS) and fs == rate == 500
    np.testing.assert_allclose(built, signal_mv.T, atol=0.0005 + 1e-6)  # half an ADC step of 1 uV
    np.testing.assert_allclose(extracted, built, atol=1e-6)

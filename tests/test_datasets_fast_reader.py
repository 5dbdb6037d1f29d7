"""The WFDB reader of the builders and the feature extractor (`ecg_wfdb`) against `wfdb.rdsamp`, float16 storage, and
the preparation benchmark's output fields (no timing thresholds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import wfdb

from datasets_scripts import mimic_iv_ecg, synthetic
from datasets_scripts.common import DropRecord, read_wfdb
from tamer_hf import TamerFeatureExtractor
from tamer_hf.modeling import ecg_wfdb
from tamer_hf.testing_utils import physionet_samples_dir

REPO = Path(__file__).resolve().parents[1]
NAMES = ["I", "ECG lead II", "V1"]  # a description with spaces is one name, as in wfdb's sig_name


def write(directory: Path, name: str, fmt: str, frames: int, gains, baselines, units=("mV", "uV", "mV"), nan_at=None):
    """A 3-signal record written by wfdb.wrsamp; `nan_at` (frame, signal) becomes the format's invalid sample."""
    signal = np.random.default_rng(0).normal(0, 1, (frames, 3))  # (T, C) physical units
    if nan_at is not None:
        signal[nan_at] = np.nan
    wfdb.wrsamp(name, fs=360, units=list(units), sig_name=NAMES, p_signal=signal, fmt=[fmt] * 3, adc_gain=list(gains),
                baseline=list(baselines), write_dir=str(directory))
    return str(directory / name)


def assert_equals_rdsamp(record_path):
    values, fields = wfdb.rdsamp(record_path)
    record = ecg_wfdb.read_record(record_path)
    assert record.signal.dtype == np.float32 and record.signal.shape == values.T.shape
    np.testing.assert_allclose(record.signal, values.T, rtol=1e-6, atol=0)  # NaN where rdsamp has NaN
    assert (record.fs, record.names, record.units) == (fields["fs"], fields["sig_name"], fields["units"])


@pytest.mark.parametrize("frames", [5000, 4999])  # 3 x 4999 samples: format 212 ends inside a byte triple
@pytest.mark.parametrize("fmt, gains, baselines", [
    ("16", (200.0, 1000.0, 37.5), (0, -12, 1024)),
    ("212", (200.0, 100.0, 37.5), (0, -12, 100)),
    ("32", (200.0, 1000.0, 37.5), (0, -12, 1024)),
    ("80", (20.0, 20.0, 10.0), (0, -12, 5)),
])
def test_numpy_path_equals_rdsamp_with_gains_baselines_and_invalid_samples(tmp_path, fmt, gains, baselines, frames):
    record_path = write(tmp_path, "rec", fmt, frames, gains, baselines, nan_at=(7, 1))
    assert ecg_wfdb.parse_header(Path(record_path + ".hea").read_text()) is not None  # not the fallback
    assert_equals_rdsamp(record_path)
    assert np.isnan(ecg_wfdb.read_record(record_path).signal[1, 7])


@pytest.mark.parametrize("fmt", ["16", "212", "32", "80"])
def test_any_span_of_samples_equals_rdsamp_of_that_span(tmp_path, fmt):
    record_path = write(tmp_path, "rec", fmt, 4999, (20.0, 10.0, 20.0), (0, -12, 5), nan_at=(7, 1))
    layout = ecg_wfdb.read_header(record_path)
    data_path = ecg_wfdb.signal_file(record_path, layout)
    for start, stop in [(0, 4999), (1, 2), (7, 8), (333, 1000), (1000, 1001), (4998, 4999)]:  # 3 signals: odd starts
        values, _ = wfdb.rdsamp(record_path, sampfrom=start, sampto=stop)  # (span, 3) begin mid-pair in format 212
        span = ecg_wfdb.to_physical(ecg_wfdb.read_digital(data_path, layout, start, stop), layout, np.float64)
        np.testing.assert_array_equal(span, values.T)


def test_other_formats_fall_back_to_rdsamp(tmp_path):
    record_path = write(tmp_path, "rec24", "24", 1000, (200.0, 200.0, 200.0), (0, 0, 0))
    assert ecg_wfdb.parse_header(Path(record_path + ".hea").read_text()) is None
    assert_equals_rdsamp(record_path)


def test_real_physionet_records_equal_rdsamp():
    samples = physionet_samples_dir()
    headers = sorted(samples.glob("*/*.hea"))
    if not headers:
        pytest.skip("physionet samples not available")
    for header in headers:
        assert_equals_rdsamp(str(header.with_suffix("")))


def test_broken_records_are_dropped_with_their_reason(tmp_path):
    record_path = write(tmp_path, "rec", "16", 1000, (200.0,) * 3, (0,) * 3)
    data = Path(record_path + ".dat")
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(DropRecord, match="truncated signal file"):
        read_wfdb(record_path)
    data.unlink()
    with pytest.raises(DropRecord, match="missing signal file"):
        read_wfdb(record_path)
    Path(record_path + ".hea").write_text("rec 3\n")  # no sampling frequency: wfdb would assume 250 Hz
    with pytest.raises(DropRecord, match="unreadable header"):
        read_wfdb(record_path)
    with pytest.raises(DropRecord, match="missing header file"):
        read_wfdb(tmp_path / "absent")


def test_units_are_converted_to_millivolts(tmp_path):
    record_path = write(tmp_path, "rec", "16", 1000, (200.0, 1000.0, 200.0), (0, 0, 0))
    signal, names, fs = read_wfdb(record_path)
    values = wfdb.rdsamp(record_path)[0].T
    np.testing.assert_allclose(signal[1], values[1] * 1e-3, rtol=1e-6)  # uV -> mV
    np.testing.assert_allclose(signal[[0, 2]], values[[0, 2]], rtol=1e-6)
    assert (names, fs) == (NAMES, 360.0)


def test_float16_storage_roundtrip_and_rows_feed_the_feature_extractor(tmp_path):
    raw = synthetic.write_mimic_layout(tmp_path / "raw", 6, seed=3)
    wide = mimic_iv_ecg.build(raw, tmp_path / "f32", val_fraction=0.0, num_workers=0)
    half = mimic_iv_ecg.build(raw, tmp_path / "f16", val_fraction=0.0, signal_dtype="float16", num_workers=0)
    reloaded = datasets.load_from_disk(str(tmp_path / "f16"))["train"]
    assert reloaded.features["ecg"].dtype == "float16"
    rows16 = reloaded.with_format("numpy")[:]["ecg"]  # datasets hands float16 storage out as float32 arrays
    rows32 = wide["train"].with_format("numpy")[:]["ecg"]
    assert rows16.shape == (6, 12, 5000)
    np.testing.assert_array_equal(rows16, rows32.astype(np.float16).astype(rows16.dtype))  # one float16 rounding
    rows16 = rows16.astype(np.float16)  # rows as another reader (Arrow, Parquet) may return them
    arrow_sizes = [sum(path.stat().st_size for path in (tmp_path / dtype / "train").glob("*.arrow"))
                   for dtype in ("f32", "f16")]
    assert arrow_sizes[1] < 0.55 * arrow_sizes[0]
    extractor = TamerFeatureExtractor()
    from_half = extractor(list(rows16), sampling_rate=500, return_tensors="np")["input_values"]
    from_cast = extractor(list(rows16.astype(np.float32)), sampling_rate=500, return_tensors="np")["input_values"]
    assert from_half.dtype == np.float32
    np.testing.assert_array_equal(from_half, from_cast)
    assert len(half["train"]) == 6


def test_preparation_benchmark_prints_ratios_and_bytes_per_record(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_prepare.py", "--speed_records", "24", "--templates", "3", "--workers", "1",
         "--layouts", "mimic", "--skip_memory", "--workdir", str(tmp_path / "bench")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    per_core = results["speed_mimic"]["per_core"]
    assert per_core["builder"]["records"] == per_core["rdsamp_loop"]["records"] == 24
    assert per_core["builder_vs_rdsamp_loop_ratio"] > 0 and per_core["builder_vs_numpy_read_ratio"] > 0
    storage = results["storage_mimic"]
    assert storage["bytes_per_record_float16"] < storage["bytes_per_record_float32"]
    assert storage["mimic_iv_ecg_total_gb_float32"] > 0 and storage["source_record_count"] == 800_035
    assert results["machine"]["versions"]["wfdb"] and results["machine"]["versions"]["pandas"]

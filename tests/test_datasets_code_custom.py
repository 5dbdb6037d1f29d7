"""CODE-test, custom (table and WFDB + CSV) and the synthetic/custom CLIs, on fixtures in the real raw layouts.

Every signal is checked against an independent computation: scipy's `resample_poly` on the fixture itself, followed
by the crop/pad rule of docs/datasets.md (CODE: central 10 s; everything else: first 10 s, zero-padded at the end).
"""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import wfdb
from scipy.signal import resample_poly

from datasets_scripts import LEADS, label_names
from datasets_scripts import code_test, custom
from datasets_scripts.common import deterministic_split
from datasets_scripts.prepare import SUMMARY
from datasets_scripts.synthetic import SYNTHETIC_LABELS, iter_records
from test_datasets_card import check_dataset_card

REPO = Path(__file__).resolve().parents[1]
MIMIC_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
TO_CANONICAL_FROM_MIMIC = [MIMIC_ORDER.index(lead) for lead in LEADS]


def random_ecg(seed, length, leads=12):
    """(leads, length) mV: smooth random content plus a lead-specific offset, so lead identity and filtering show."""
    rng = np.random.default_rng(seed)
    kernel = np.hanning(9) / np.hanning(9).sum()
    noise = np.stack([np.convolve(rng.standard_normal(length), kernel, "same") for _ in range(leads)])
    return (noise + 0.05 * np.arange(1, leads + 1)[:, None]).astype(np.float32)


def fit(signal, anchor="start", length=5000):
    """Reference crop/pad, written independently of datasets_scripts.common.fit_length."""
    n = signal.shape[1]
    if n >= length:
        start = (n - length) // 2 if anchor == "center" else 0
        return signal[:, start:start + length]
    return np.concatenate([signal, np.zeros((signal.shape[0], length - n))], axis=1)


def rows_by_id(dataset):
    return {row["record_id"]: (split, row) for split in dataset for row in dataset[split].with_format("numpy")}


def summary_of(output_dir):
    return json.loads((Path(output_dir) / SUMMARY).read_text())


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------------------------
# CODE-test: ecg_tracings.hdf5 (tracings (N, 4096, 12) time-major, 400 Hz, zero-padded both sides) + CSV
# ---------------------------------------------------------------------------------------------------------------
CODE_LABEL_ROWS = [  # 1dAVb, RBBB, LBBB, SB, AF, ST
    [1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 0],  # row 3: 30 % NaN in V2 -> dropped
    [0, 0, 0, 0, 1, 1],  # row 4: 10-sample NaN gap in II -> repaired by interpolation
    [0, 0, 1, 0, 0, 0],  # row 5: V4 all zero (disconnected lead) -> dropped as flat
]
CODE_EXPECTED_LABELS = {0: {"1AVB", "CRBBB"}, 1: {"SBRAD"}, 2: set(), 4: {"AFIB", "STACH"}}


def code_tracings():
    """(6, 4096, 12) float32 as in the release: row 1 is a 7 s exam zero-padded symmetrically to 4096 samples."""
    tracings = np.stack([random_ecg(100 + i, 4096).T for i in range(len(CODE_LABEL_ROWS))])
    short = random_ecg(200, 2800).T  # 7 s at 400 Hz
    tracings[1] = 0.0
    tracings[1, 648:648 + 2800] = short
    tracings[3, 1000:1000 + 1229, LEADS.index("V2")] = np.nan
    tracings[4, 500:510, LEADS.index("II")] = np.nan
    tracings[5, :, LEADS.index("V4")] = 0.0
    return tracings


def write_code(root: Path, tracings, exam_ids=None, csv_in_annotations=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "ecg_tracings.hdf5", "w") as handle:
        handle.create_dataset("tracings", data=tracings)
        if exam_ids is not None:
            handle.create_dataset("exam_id", data=np.asarray(exam_ids, dtype=np.int64))
    csv_dir = root / "annotations" if csv_in_annotations else root
    csv_dir.mkdir(exist_ok=True)
    pd.DataFrame(CODE_LABEL_ROWS, columns=["1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"]).to_csv(
        csv_dir / "gold_standard.csv", index=False)
    return root


def code_reference(tracing_t12, units_per_mv=1.0):
    """Independent CODE pipeline: interpolate NaN gaps, 400 -> 500 Hz polyphase, central 5000 samples."""
    signal = tracing_t12.T.astype(np.float64) / units_per_mv  # (12, 4096); CODE's lead order is canonical
    for lead in signal:
        bad = np.isnan(lead)
        if bad.any():
            lead[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), lead[~bad])
    upsampled = resample_poly(signal, 5, 4, axis=1)  # (12, 5120)
    assert upsampled.shape == (12, 5120)
    return upsampled[:, 60:5060]


@pytest.fixture(scope="module")
def ds_code_raw(tmp_path_factory):
    tracings = code_tracings()
    return write_code(tmp_path_factory.mktemp("code"), tracings), tracings


def test_code_test_labels_signals_and_drops(ds_code_raw, tmp_path):
    raw, tracings = ds_code_raw
    code_test.build(raw, tmp_path / "out", num_workers=2, shard_size=4)
    dataset = datasets.load_from_disk(str(tmp_path / "out"))
    check_dataset_card(tmp_path / "out", dataset, license="cc-by-4.0")
    names = label_names(dataset)
    assert names == ["1AVB", "CRBBB", "CLBBB", "SBRAD", "AFIB", "STACH"]
    features = dataset["test"].features
    assert features["ecg"] == datasets.Array2D((12, 5000), "float32")
    assert features["labels"] == datasets.List(datasets.ClassLabel(names=names))
    assert set(features) == {"ecg", "record_id", "patient_id", "labels"}
    assert len(dataset["train"]) == len(dataset["validation"]) == 0  # CODE-test is a test set
    rows = rows_by_id(dataset)
    assert sorted(rows) == [f"code-test-{i:04d}" for i in CODE_EXPECTED_LABELS]
    for index, expected_labels in CODE_EXPECTED_LABELS.items():
        split, row = rows[f"code-test-{index:04d}"]
        assert split == "test" and row["patient_id"] == ""
        assert {names[i] for i in row["labels"]} == expected_labels
        assert row["ecg"].shape == (12, 5000) and row["ecg"].dtype == np.float32
        np.testing.assert_allclose(row["ecg"], code_reference(tracings[index]), atol=1e-5)
    # the 7 s exam sits in the middle: its padding is split between both ends after the central crop
    short = rows["code-test-0001"][1]["ecg"]
    # (7 s at 400 Hz from sample 648 -> 500 Hz samples 810..4310 of 5120 -> 750..4250 after the central crop)
    assert np.abs(short[:, :700]).max() < 1e-6 and np.abs(short[:, 4300:]).max() < 1e-6
    assert np.ptp(short[:, 800:4200], axis=1).min() > 0.1
    assert np.isfinite(rows["code-test-0004"][1]["ecg"]).all()
    summary = summary_of(tmp_path / "out")
    assert summary["kept"] == {"test": 4}
    assert summary["dropped"] == {"non-finite samples (NaN/Inf) beyond the 1% repair limit": 1,
                                  "flat lead (no signal)": 1}
    assert summary["examples"]["flat lead (no signal)"] == ["code-test-0005"]


def test_code_test_exam_ids_units_and_project_split(ds_code_raw, tmp_path):
    _, tracings = ds_code_raw
    raw = write_code(tmp_path / "raw", tracings, exam_ids=[9001, 9002, 9003, 9004, 9005, 9006],
                     csv_in_annotations=False)
    dataset = code_test.build(raw, tmp_path / "out", units_per_mv=2.0, all_test=False, num_workers=1)
    rows = rows_by_id(dataset)
    assert sorted(rows) == ["9001", "9002", "9003", "9005"]
    for record_id, (split, row) in rows.items():
        assert split == deterministic_split(record_id)
        np.testing.assert_allclose(row["ecg"], code_reference(tracings[int(record_id) - 9001], 2.0), atol=1e-5)


def test_code_test_bad_input_is_named(ds_code_raw, tmp_path):
    raw, tracings = ds_code_raw
    with pytest.raises(FileNotFoundError, match="raw_dir does not exist"):
        code_test.build(tmp_path / "nowhere", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ecg_tracings.hdf5 not found"):
        code_test.build(tmp_path / "empty", tmp_path / "o")
    broken = tmp_path / "broken"
    write_code(broken, tracings)
    pd.read_csv(broken / "annotations" / "gold_standard.csv").drop(columns=["SB"]).to_csv(
        broken / "annotations" / "gold_standard.csv", index=False)
    with pytest.raises(ValueError, match="gold_standard.csv lacks column\\(s\\) SB"):
        code_test.build(broken, tmp_path / "o")
    mismatch = write_code(tmp_path / "mismatch", tracings[:4])
    with pytest.raises(ValueError, match="has 4 exams but gold_standard.csv has 6 rows"):
        code_test.build(mismatch, tmp_path / "o")


# ---------------------------------------------------------------------------------------------------------------
# custom: a Parquet table with ECG, report and sampling-rate columns
# ---------------------------------------------------------------------------------------------------------------
# ecg_id: (subject, fs, layout, seconds or shape, report); layout "cf" = (12, T), "tm" = (T, 12)
TABLE_ROWS = {
    "e1": ("s1", 250, "cf", 10, "Sinus rhythm. Normal ECG."),
    "e2": ("s1", 250, "tm", 10, "  Atrial fibrillation with RVR  "),
    "e3": ("s2", 500, "cf", 10, "Sinus bradycardia. First degree AV block."),
    "e4": ("s3", 250, "tm", 8, "Sinus tachycardia."),  # 8 s: zero-padded at the end
    "e5": ("s4", 250, "cf", 12, "Left bundle branch block."),  # 12 s: first 10 s kept
    "bad_shape": ("s5", 250, "cf", (8, 2500), "Sinus rhythm."),
    "bad_nan": ("s6", 250, "cf", "nan", "Sinus rhythm."),
    "bad_report": ("s7", 250, "cf", 10, "   "),
    "bad_none_report": ("s8", 250, "tm", 10, None),
}
TABLE_KEPT = ["e1", "e2", "e3", "e4", "e5"]


def table_signal(index, spec):
    """The channel-first (12, T) content of a table row (before any layout change)."""
    _, fs, _, size, _ = spec
    if size == "nan":
        return np.full((12, 10 * fs), np.nan, dtype=np.float32)
    if isinstance(size, tuple):
        return random_ecg(300 + index, size[1], leads=size[0])
    return random_ecg(300 + index, int(size * fs))


def write_table(path: Path, rows=TABLE_ROWS, lead_order=LEADS) -> Path:
    ecgs = []
    for index, spec in enumerate(rows.values()):
        signal = table_signal(index, spec)
        if signal.shape[0] == 12:
            signal = signal[[LEADS.index(lead) for lead in lead_order]]  # stored in `lead_order`
        ecgs.append((signal.T if spec[2] == "tm" else signal).tolist())
    table = pa.table({
        "ecg_id": list(rows),
        "subject": [spec[0] for spec in rows.values()],
        "signal": pa.array(ecgs, type=pa.list_(pa.list_(pa.float32()))),
        "text": [spec[4] for spec in rows.values()],
        "fs": pa.array([spec[1] for spec in rows.values()], type=pa.int64()),
    })
    pq.write_table(table, path)
    return path


def table_reference(index, spec, fs=None):
    signal = table_signal(index, spec).astype(np.float64)
    fs = fs or spec[1]
    return fit(signal if fs == 500 else resample_poly(signal, 500 // fs, 1, axis=1))


@pytest.fixture(scope="module")
def ds_table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("table") / "ecgs.parquet")


def check_table_dataset(dataset):
    rows = rows_by_id(dataset)
    assert sorted(rows) == TABLE_KEPT
    specs = list(TABLE_ROWS.items())
    for index, (record_id, spec) in enumerate(specs):
        if record_id not in rows:
            continue
        split, row = rows[record_id]
        assert row["report"] == spec[4].strip().lower()
        assert row["patient_id"] == spec[0] and split == deterministic_split(spec[0])
        assert row["ecg"].shape == (12, 5000) and row["ecg"].dtype == np.float32
        np.testing.assert_allclose(row["ecg"], table_reference(index, spec), atol=1e-5)
    assert not rows["e4"][1]["ecg"][:, 4000:].any()  # 8 s at 250 Hz = 4000 samples at 500 Hz, then zeros
    assert rows["e1"][0] == rows["e2"][0]  # one patient, one split


def test_custom_table_rate_column_layouts_reports_and_drops(ds_table, tmp_path):
    custom.build_from_table(ds_table, tmp_path / "out", ecg_column="signal", report_column="text",
                            sampling_rate_column="fs", id_column="ecg_id", patient_column="subject",
                            num_workers=2, shard_size=4)
    dataset = datasets.load_from_disk(str(tmp_path / "out"))
    assert dataset["train"].features == custom.ecg_features(None, with_report=True)
    assert label_names(dataset) == []
    check_table_dataset(dataset)
    check_dataset_card(tmp_path / "out", dataset, license="unknown", citation=False)
    summary = summary_of(tmp_path / "out")
    assert summary["dropped"] == {"empty report": 2, "ECG shape (8, 2500) has no axis of 12 leads": 1,
                                  "non-finite samples (NaN/Inf) beyond the 1% repair limit": 1}
    assert sorted(summary["examples"]["empty report"]) == ["bad_none_report", "bad_report"]
    assert sum(summary["kept"].values()) == len(TABLE_KEPT)


def test_custom_table_single_rate_and_lead_names(tmp_path):
    rows = {"m1": ("p1", 250, "tm", 10, "Sinus rhythm. Normal ECG."), "m2": ("p2", 250, "cf", 9, "Sinus rhythm.")}
    source = write_table(tmp_path / "mimic_order.parquet", rows, lead_order=MIMIC_ORDER)
    dataset = custom.build_from_table(source, tmp_path / "out", ecg_column="signal", report_column="text",
                                      sampling_rate=250, lead_names=MIMIC_ORDER, id_column="ecg_id", num_workers=1)
    got = rows_by_id(dataset)
    for index, (record_id, spec) in enumerate(rows.items()):
        np.testing.assert_allclose(got[record_id][1]["ecg"], table_reference(index, spec), atol=1e-5)
        assert got[record_id][1]["patient_id"] == ""
        assert got[record_id][0] == deterministic_split(record_id)  # no patient column: split by record id
    # read in the canonical order instead, the aVF and aVL rows come out swapped: the lead names matter
    swapped = custom.build_from_table(source, tmp_path / "canon", ecg_column="signal", report_column="text",
                                      sampling_rate=250, id_column="ecg_id", num_workers=1)
    row = rows_by_id(swapped)["m1"][1]["ecg"]
    reference = table_reference(0, rows["m1"])
    np.testing.assert_allclose(row[LEADS.index("aVL")], reference[LEADS.index("aVF")], atol=1e-5)
    assert np.abs(row[LEADS.index("aVL")] - reference[LEADS.index("aVL")]).max() > 0.01


def test_custom_table_rewritten_in_place_is_read_again(tmp_path):
    """A long-lived process (notebook) that fixes its Parquet file and rebuilds must get the new content."""
    first = {"x1": ("p1", 250, "cf", 10, "Sinus rhythm.")}
    second = {"y1": ("p1", 500, "tm", 10, "Atrial flutter."), "y2": ("p2", 500, "cf", 10, "Sinus rhythm.")}
    source = write_table(tmp_path / "mine.parquet", first)
    before = custom.build_from_table(source, tmp_path / "one", ecg_column="signal", report_column="text",
                                     sampling_rate_column="fs", id_column="ecg_id", num_workers=1)
    assert sorted(rows_by_id(before)) == ["x1"]
    write_table(source, second)
    after = custom.build_from_table(source, tmp_path / "two", ecg_column="signal", report_column="text",
                                    sampling_rate_column="fs", id_column="ecg_id", num_workers=1)
    rows = rows_by_id(after)
    assert sorted(rows) == ["y1", "y2"] and rows["y1"][1]["report"] == "atrial flutter."
    np.testing.assert_allclose(rows["y1"][1]["ecg"], table_reference(0, second["y1"]), atol=1e-5)


def test_custom_table_errors_name_the_problem(ds_table, tmp_path):
    with pytest.raises(ValueError, match="column 'ecg' not found in .*ecgs.parquet \\(columns: ecg_id, subject"):
        custom.build_from_table(ds_table, tmp_path / "o", report_column="text", sampling_rate=250)
    with pytest.raises(ValueError, match="column 'report' not found"):
        custom.build_from_table(ds_table, tmp_path / "o", ecg_column="signal", sampling_rate=250)
    with pytest.raises(ValueError, match="column 'rate' not found"):
        custom.build_from_table(ds_table, tmp_path / "o", ecg_column="signal", report_column="text",
                                sampling_rate_column="rate")
    with pytest.raises(ValueError, match="exactly one of sampling_rate"):
        custom.build_from_table(ds_table, tmp_path / "o", ecg_column="signal", report_column="text")
    with pytest.raises(FileNotFoundError, match="missing.parquet does not exist"):
        custom.build_from_table(tmp_path / "missing.parquet", tmp_path / "o", sampling_rate=500)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------------------------
# custom: a folder of WFDB records (written with wfdb.wrsamp) + a CSV of reports
# ---------------------------------------------------------------------------------------------------------------
# record path: (lead order in the file, fs, fmt, report, patient) -- the CSV lists them in another order
WFDB_RECORDS = {
    "p1/rec_a": (MIMIC_ORDER, 500, "16", "Sinus rhythm. Normal ECG.", "11"),
    "p1/rec_b": (list(LEADS), 250, "16", "Atrial fibrillation.", "11"),
    "p2/rec_c": (MIMIC_ORDER, 250, "212", "Sinus bradycardia.", "12"),  # not format 16: wfdb library path
    "p2/rec_d": (MIMIC_ORDER, 500, "16", "Not listed in the CSV.", "13"),
    "p3/rec_e": (MIMIC_ORDER, 500, "16", "", "14"),  # empty report
}


@pytest.fixture(scope="module")
def ds_wfdb_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("wfdb")
    for index, (record, (order, fs, fmt, _, _)) in enumerate(WFDB_RECORDS.items()):
        folder = root / "records" / Path(record).parent
        folder.mkdir(parents=True, exist_ok=True)
        canonical = random_ecg(400 + index, 10 * fs)  # (12, T) in LEADS order
        stored = canonical[[LEADS.index(lead) for lead in order]]
        wfdb.wrsamp(Path(record).name, fs=fs, units=["mV"] * 12, sig_name=list(order), p_signal=stored.T.astype(float),
                    fmt=[fmt] * 12, adc_gain=[200.0 if fmt == "212" else 1000.0] * 12, baseline=[0] * 12,
                    write_dir=str(folder))
    listed = ["p2/rec_c", "p3/rec_e", "p9/rec_missing", "p1/rec_b", "p1/rec_a"]
    pd.DataFrame({"record": listed,
                  "report": [WFDB_RECORDS.get(r, (0, 0, 0, "Sinus rhythm.", 0))[3] for r in listed],
                  "patient_id": [WFDB_RECORDS.get(r, (0, 0, 0, "", "19"))[4] for r in listed]}).to_csv(
        root / "reports.csv", index=False)
    return root


def wfdb_reference(root, record):
    """Read back with wfdb.rdsamp (the library, not the builder's reader), reorder by name, resample, pad/crop."""
    values, fields = wfdb.rdsamp(str(root / "records" / record))
    position = [fields["sig_name"].index(lead) for lead in LEADS]
    signal = values.T[position]
    return fit(signal if fields["fs"] == 500 else resample_poly(signal, 2, 1, axis=1))


def check_wfdb_dataset(dataset, root):
    rows = rows_by_id(dataset)
    assert sorted(rows) == ["p1/rec_a", "p1/rec_b", "p2/rec_c"]  # joined by record id, not by row
    for record, (split, row) in rows.items():
        _, _, _, report, patient = WFDB_RECORDS[record]
        assert row["report"] == report.lower() and row["patient_id"] == patient
        assert split == deterministic_split(patient)
        np.testing.assert_allclose(row["ecg"], wfdb_reference(root, record), atol=1e-5)
    # the file order aVF, aVL is undone: the output's aVL is the file's 6th channel
    values, _ = wfdb.rdsamp(str(root / "records" / "p1/rec_a"))
    np.testing.assert_allclose(rows["p1/rec_a"][1]["ecg"][LEADS.index("aVL")], values[:, 5], atol=1e-6)
    np.testing.assert_allclose(rows["p1/rec_a"][1]["ecg"][LEADS.index("aVF")], values[:, 4], atol=1e-6)


def test_custom_wfdb_join_lead_order_and_drops(ds_wfdb_raw, tmp_path):
    custom.build_from_wfdb(ds_wfdb_raw / "records", ds_wfdb_raw / "reports.csv", tmp_path / "out", num_workers=2)
    check_wfdb_dataset(datasets.load_from_disk(str(tmp_path / "out")), ds_wfdb_raw)
    summary = summary_of(tmp_path / "out")
    assert summary["dropped"] == {"empty report": 1, "missing header file": 1}
    assert summary["examples"] == {"empty report": ["p3/rec_e"], "missing header file": ["p9/rec_missing"]}


def test_custom_wfdb_errors_name_the_problem(ds_wfdb_raw, tmp_path):
    with pytest.raises(FileNotFoundError, match="WFDB folder does not exist"):
        custom.build_from_wfdb(tmp_path / "nowhere", ds_wfdb_raw / "reports.csv", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="reports CSV not found"):
        custom.build_from_wfdb(ds_wfdb_raw / "records", tmp_path / "none.csv", tmp_path / "o")
    with pytest.raises(ValueError, match="reports.csv lacks column 'study'"):
        custom.build_from_wfdb(ds_wfdb_raw / "records", ds_wfdb_raw / "reports.csv", tmp_path / "o",
                               record_column="study")


# ---------------------------------------------------------------------------------------------------------------
# CLIs, run as subprocesses and reloaded here
# ---------------------------------------------------------------------------------------------------------------
def test_synthetic_cli_writes_a_reloadable_corpus(tmp_path):
    out = tmp_path / "synthetic"
    result = run_cli("datasets_scripts.synthetic", "--output_dir", str(out), "--num_records", "40", "--seed", "3",
                     "--shard_size", "16")
    assert result.returncode == 0, result.stderr
    dataset = datasets.load_from_disk(str(out))
    assert label_names(dataset) == list(SYNTHETIC_LABELS)
    rows = rows_by_id(dataset)
    assert sorted(rows) == [f"synth-3-{i:08d}" for i in range(40)]
    assert {split for split, _ in rows.values()} == {"train", "validation", "test"}
    for index in (0, 17, 39):
        split, row = rows[f"synth-3-{index:08d}"]
        signal, report, labels = next(iter_records(1, seed=3, start=index))
        np.testing.assert_array_equal(row["ecg"], signal)
        assert row["report"] == report and split == deterministic_split(row["record_id"])
        assert [SYNTHETIC_LABELS[i] for i in row["labels"]] == [n for n in SYNTHETIC_LABELS if n in labels]
    assert sum(summary_of(out)["kept"].values()) == 40 and summary_of(out)["dropped"] == {}
    assert "kept 40 records" in result.stderr


def test_custom_cli_table_and_wfdb_modes(ds_table, ds_wfdb_raw, tmp_path):
    table = subprocess.Popen(
        [sys.executable, "-m", "datasets_scripts.custom", "--raw_dir", str(ds_table), "--output_dir",
         str(tmp_path / "table"), "--ecg_column", "signal", "--report_column", "text", "--sampling_rate_column",
         "fs", "--id_column", "ecg_id", "--patient_column", "subject", "--num_workers", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = run_cli("datasets_scripts.custom", "--raw_dir", str(ds_wfdb_raw / "records"), "--reports_csv",
                     str(ds_wfdb_raw / "reports.csv"), "--output_dir", str(tmp_path / "wfdb"), "--num_workers", "1")
    table_out, table_err = table.communicate(timeout=120)
    assert table.returncode == 0, table_err
    assert folder.returncode == 0, folder.stderr
    check_table_dataset(datasets.load_from_disk(str(tmp_path / "table")))
    check_wfdb_dataset(datasets.load_from_disk(str(tmp_path / "wfdb")), ds_wfdb_raw)
    assert "dropped 4 records" in table_err and "empty report" in table_err  # the summary is logged to stderr


def test_bad_invocations_exit_2_with_one_error_line(ds_table, tmp_path):
    cases = {  # name: (arguments, text the error line must contain)
        "table column": (["datasets_scripts.custom", "--raw_dir", str(ds_table), "--output_dir", str(tmp_path / "a"),
                          "--ecg_column", "waveform", "--report_column", "text", "--sampling_rate", "250"],
                         "column 'waveform' not found"),
        "table path": (["datasets_scripts.custom", "--raw_dir", str(tmp_path / "gone.parquet"), "--output_dir",
                        str(tmp_path / "b"), "--sampling_rate", "250"], "gone.parquet does not exist"),
        "code dir": (["datasets_scripts.code_test", "--raw_dir", str(tmp_path / "no_code"), "--output_dir",
                      str(tmp_path / "c")], "raw_dir does not exist"),
    }
    processes = {name: subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True) for name, (args, _) in cases.items()}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
        assert cases[name][1] in lines[0], (name, stderr)
        assert "Traceback" not in stderr
    assert not any((tmp_path / name).exists() for name in "abc")

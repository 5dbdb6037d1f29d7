"""Builders on the real PhysioNet records in ../shared/data/physionet-samples (skipped when absent)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.io import loadmat

from datasets_scripts import label_names
from datasets_scripts import cpsc2018, csn
from tamer_hf.testing_utils import physionet_samples_dir

SAMPLES = physionet_samples_dir()
CONDITION_TABLE = Path(__file__).resolve().parents[2] / "shared/reference/csn/ConditionNames_SNOMED-CT.csv"

# Hand-read from the `# Dx:` header lines and ConditionNames_SNOMED-CT.csv (codes absent from the table ignored).
GEORGIA_EXPECTED = {
    "E07500": {"SB"}, "E07501": {"ST"}, "E07502": {"ST"}, "E07503": {"ST"}, "E07504": {"QTIE"}, "E07505": {"LVH"},
    "E07506": {"SR"}, "E07507": {"STTC", "QTIE"}, "E07508": {"ST"}, "E07509": {"RBBB", "SB"},
    "E07510": {"RBBB", "SB"}, "E07511": {"SR"}, "E07512": {"SB"}, "E07513": {"SR"}, "E07514": {"ST", "TWO"},
    "E07515": {"SR"}, "E07516": {"TWC"}, "E07517": {"ST"}, "E07518": {"SR"}, "E07519": {"LVH"},
}


def rows_by_id(dataset):
    return {row["record_id"]: row for split in dataset for row in dataset[split].with_format("numpy")}


def test_csn_builder_reads_real_cinc_layout_records(tmp_path):
    if not (SAMPLES / "georgia").is_dir() or not CONDITION_TABLE.is_file():
        pytest.skip("physionet samples or CSN condition table not available")
    dataset = csn.build(SAMPLES / "georgia", tmp_path / "out", label_set="all", condition_table=CONDITION_TABLE)
    names = label_names(dataset)
    rows = rows_by_id(dataset)
    assert {rid: {names[i] for i in row["labels"]} for rid, row in rows.items()} == GEORGIA_EXPECTED
    for record_id in ("E07500", "E07514"):
        values, fields = wfdb.rdsamp(str(SAMPLES / "georgia" / record_id))  # independent reader
        assert fields["sig_name"][4:6] == ["aVL", "aVF"]
        np.testing.assert_allclose(rows[record_id]["ecg"], values.T, atol=1e-5)


def test_cpsc_builder_reads_real_original_mat_records(tmp_path):
    if not (SAMPLES / "cpsc2018").is_dir():
        pytest.skip("physionet samples not available")
    reference = tmp_path / "REFERENCE.csv"  # the samples ship without labels: hand-written ones for the mapping
    pd.DataFrame({"Recording": [f"A19{80 + i}" for i in range(10)],
                  "First_label": [1, 2, 3, 4, 5, 6, 7, 8, 9, 2], "Second_label": [None] * 9 + [7]}).to_csv(
        reference, index=False)
    dataset = cpsc2018.build(SAMPLES / "cpsc2018", tmp_path / "out", reference_csv=reference)
    names = label_names(dataset)
    rows = rows_by_id(dataset)
    expected = ["NORM", "AFIB", "1AVB", "CLBBB", "CRBBB", "PAC", "VPC", "STD", "STE"]
    for i, label in enumerate(expected):
        assert {names[i] for i in rows[f"A19{80 + i}"]["labels"]} == {label}
    assert {names[i] for i in rows["A1989"]["labels"]} == {"AFIB", "VPC"}
    for record_id, row in rows.items():
        raw = loadmat(str(SAMPLES / "cpsc2018" / f"{record_id}.mat"))["ECG"]["data"][0, 0]  # (12, N) mV
        n = min(raw.shape[1], 5000)
        np.testing.assert_allclose(row["ecg"][:, :n], raw[:, :n], atol=1e-5)

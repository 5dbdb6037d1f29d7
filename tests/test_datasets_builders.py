"""Builders on fixture trees in the real raw layouts (written with wfdb.wrsamp and the real CSV columns)."""

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.io import savemat

from datasets_scripts import LEADS, label_names
from datasets_scripts import cpsc2018, csn, mimic_iv_ecg, ptbxl, synthetic
from datasets_scripts.common import dataset_metadata, deterministic_split
from datasets_scripts.prepare import MANIFEST, SUMMARY
from test_datasets_card import check_dataset_card

MERL_SPLITS = Path(__file__).resolve().parents[2] / "shared/reference/merl/data_split"
MIMIC_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


def lead_coded_signal(seconds=10, fs=500, names=LEADS):
    """(T, 12) mV: lead k is a 5 Hz sine of amplitude 0.1*(k_canonical+1), so lead identity is readable back."""
    t = np.arange(int(seconds * fs)) / fs
    return np.stack([0.1 * (LEADS.index(n) + 1) * np.sin(2 * np.pi * 5 * t) for n in names], axis=1)


def write_record(directory: Path, name: str, signal_t12, names=LEADS, fs=500, comments=None):
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(names), p_signal=signal_t12, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(directory), comments=comments or [])


def rows_by_id(dataset):
    return {row["record_id"]: (split, row) for split in dataset for row in dataset[split].with_format("numpy")}


def named(row, names):
    return {names[i] for i in row["labels"]}


def summary_of(output_dir):
    return json.loads((Path(output_dir) / SUMMARY).read_text())


# ---------------------------------------------------------------------------------------------------------------
# PTB-XL
# ---------------------------------------------------------------------------------------------------------------
SCP_STATEMENTS = pd.DataFrame(
    [["NORM", 1, None, None, "NORM", "NORM"], ["IMI", 1, None, None, "MI", "IMI"], ["ASMI", 1, None, None, "MI", "AMI"],
     ["LVH", 1, None, None, "HYP", "LVH"], ["NDT", 1, 1, None, "STTC", "STTC"], ["STD_", None, 1, None, None, None],
     ["SR", None, None, 1, None, None], ["AFIB", None, None, 1, None, None]],
    columns=["code", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"]).set_index("code")
SCP_STATEMENTS.index.name = None

# ecg_id: (scp_codes, strat_fold, defect)
PTBXL_RECORDS = {
    1: ({"NORM": 100.0, "SR": 0.0}, 3, None),
    2: ({"IMI": 50.0, "ASMI": 15.0, "SR": 0.0, "STD_": 100.0}, 9, None),
    3: ({"LVH": 100.0, "AFIB": 0.0}, 10, None),
    4: ({"SR": 0.0}, 1, None),
    5: ({"NDT": 100.0, "SR": 0.0}, 2, "truncated"),
    6: ({"NORM": 100.0, "SR": 0.0}, 4, "nan_lead"),
    7: ({"NORM": 80.0, "SR": 0.0}, 5, "small_gap"),
    8: ({"NORM": 100.0}, 6, "missing_dat"),
    9: ({"NDT": 100.0, "SR": 0.0}, 10, None),
}
EXPECTED = {  # task -> ecg_id -> label set (records absent here are dropped)
    "super": {"1": {"NORM"}, "2": {"MI"}, "3": {"HYP"}, "7": {"NORM"}, "9": {"STTC"}},
    "sub": {"1": {"NORM"}, "2": {"AMI", "IMI"}, "3": {"LVH"}, "7": {"NORM"}, "9": {"STTC"}},
    "form": {"2": {"STD"}, "9": {"NDT"}},
    "rhythm": {"1": {"SR"}, "2": {"SR"}, "3": {"AFIB"}, "4": {"SR"}, "7": {"SR"}, "9": {"SR"}},
}


def write_ptbxl(root: Path, records=PTBXL_RECORDS) -> Path:
    rows = []
    for ecg_id, (codes, fold, defect) in records.items():
        folder = root / "records500" / f"{ecg_id // 1000 * 1000:05d}"
        name = f"{ecg_id:05d}_hr"
        signal = lead_coded_signal()
        if defect == "nan_lead":
            signal[1000:4000, LEADS.index("V3")] = np.nan
        if defect == "small_gap":
            signal[100:110, LEADS.index("II")] = np.nan
        write_record(folder, name, signal)
        dat = folder / f"{name}.dat"
        if defect == "truncated":
            dat.write_bytes(dat.read_bytes()[:5000])
        if defect == "missing_dat":
            dat.unlink()
        rows.append({"ecg_id": ecg_id, "patient_id": float(100 + ecg_id), "age": 60, "sex": 0,
                     "scp_codes": str(codes), "strat_fold": fold, "filename_lr": f"records100/x/{ecg_id:05d}_lr",
                     "filename_hr": f"records500/{ecg_id // 1000 * 1000:05d}/{name}"})
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    SCP_STATEMENTS.to_csv(root / "scp_statements.csv")
    return root


@pytest.fixture(scope="module")
def ds_ptbxl_raw(tmp_path_factory):
    return write_ptbxl(tmp_path_factory.mktemp("ptbxl"))


@pytest.mark.parametrize("task", ["super", "sub", "form", "rhythm"])
def test_ptbxl_task_labels_record_by_record(ds_ptbxl_raw, tmp_path, task):
    dataset = ptbxl.build(ds_ptbxl_raw, tmp_path / "out", task=task, num_workers=2, shard_size=3)
    reloaded = datasets.load_from_disk(str(tmp_path / "out"))
    names = label_names(reloaded)
    assert names == list(ptbxl.TASK_LABELS[task])
    rows = rows_by_id(reloaded)
    assert {rid: named(row, names) for rid, (_, row) in rows.items()} == EXPECTED[task]
    folds = {str(k): v[1] for k, v in PTBXL_RECORDS.items()}
    for rid, (split, row) in rows.items():
        assert split == {9: "validation", 10: "test"}.get(folds[rid], "train")
        assert row["patient_id"] == str(100 + int(rid))
    assert len(dataset["train"]) + len(dataset["validation"]) + len(dataset["test"]) == len(EXPECTED[task])
    card = check_dataset_card(tmp_path / "out", reloaded, license="cc-by-4.0")
    assert f"- `task`: {task}" in card.text and "official stratified folds" in card.text


def test_ptbxl_corrupt_records_are_counted_and_small_gaps_repaired(ds_ptbxl_raw, tmp_path):
    dataset = ptbxl.build(ds_ptbxl_raw, tmp_path / "out", task="super")
    dropped = summary_of(tmp_path / "out")["dropped"]
    assert dropped["no super label"] == 1
    assert sum(v for k, v in dropped.items() if "truncated" in k) == 1
    assert sum(v for k, v in dropped.items() if "non-finite" in k) == 1
    assert dropped["missing signal file"] == 1
    row = rows_by_id(dataset)["7"][1]
    expected = lead_coded_signal().T.astype(np.float32)  # the gap sits on a sine: interpolation stays close
    assert np.isfinite(row["ecg"]).all()
    np.testing.assert_allclose(row["ecg"], expected, atol=0.02)
    assert row["ecg"].shape == (12, 5000) and row["ecg"].dtype == np.float32


def test_ptbxl_bad_input_gives_clear_errors(ds_ptbxl_raw, tmp_path):
    with pytest.raises(ValueError, match="unknown PTB-XL task 'diagnostic'"):
        ptbxl.build(ds_ptbxl_raw, tmp_path / "o", task="diagnostic")
    with pytest.raises(FileNotFoundError, match="raw_dir does not exist"):
        ptbxl.build(tmp_path / "nowhere", tmp_path / "o")
    broken = tmp_path / "broken"
    broken.mkdir()
    pd.read_csv(ds_ptbxl_raw / "ptbxl_database.csv").drop(columns=["strat_fold"]).to_csv(
        broken / "ptbxl_database.csv", index=False)
    (broken / "scp_statements.csv").write_text((ds_ptbxl_raw / "scp_statements.csv").read_text())
    with pytest.raises(ValueError, match="lacks column\\(s\\) strat_fold"):
        ptbxl.build(broken, tmp_path / "o")


def test_ptbxl_cli_reports_errors_in_one_line(ds_ptbxl_raw, tmp_path, capsys):
    from datasets_scripts import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.run(ptbxl.main, ["--raw_dir", str(ds_ptbxl_raw), "--output_dir", str(tmp_path / "o"), "--task", "x"])
    assert exit_info.value.code == 2
    assert "error: unknown PTB-XL task 'x'" in capsys.readouterr().err


def test_ptbxl_merl_split_files_reproduce_membership(tmp_path):
    split_dir = MERL_SPLITS / "ptbxl" / "super_class"
    if not split_dir.is_dir():
        pytest.skip("MERL split files not available")
    files = {s: split_dir / f"ptbxl_super_class_{f}.csv" for s, f in
             (("train", "train"), ("validation", "val"), ("test", "test"))}
    chosen = {}
    for split, path in files.items():
        table = pd.read_csv(path)
        for ecg_id in table["ecg_id"].iloc[[0, 1, 5]]:
            chosen[int(ecg_id)] = split
    # the fixture's own folds disagree with MERL's on purpose: only the id may decide the split
    records = {ecg_id: ({"NORM": 100.0}, 1, None) for ecg_id in chosen}
    raw = write_ptbxl(tmp_path / "raw", records)
    dataset = ptbxl.build(raw, tmp_path / "out", task="super", split_files={k: str(v) for k, v in files.items()})
    assert {rid: split for rid, (split, _) in rows_by_id(dataset).items()} == {str(k): v for k, v in chosen.items()}


# ---------------------------------------------------------------------------------------------------------------
# MIMIC-IV-ECG
# ---------------------------------------------------------------------------------------------------------------
MIMIC_REPORTS = {  # study_id: (subject_id, statements)
    40000001: (10000001, ["Sinus rhythm", "Normal ECG", None]),
    40000002: (10000001, ["*** Sinus tachycardia ***", "Abnormal EKG", "="]),
    40000003: (10000002, ["Sinus rhythm", None, None]),  # 2 words: dropped
    40000004: (10000003, ["Atrial fibrillation", "Low QRS voltages", "Abnormal ECG"]),
}


@pytest.fixture(scope="module")
def ds_mimic_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic")
    records, measurements = [], []
    for study_id, (subject_id, statements) in MIMIC_REPORTS.items():
        relative = f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"
        write_record(root / Path(relative).parent, str(study_id), lead_coded_signal(names=MIMIC_ORDER), MIMIC_ORDER)
        records.append({"subject_id": subject_id, "study_id": study_id, "file_name": study_id,
                        "ecg_time": "2180-07-21 00:00:00", "path": relative})
        row = {"subject_id": subject_id, "study_id": study_id, "cart_id": 6848296, "ecg_time": "2180-07-21"}
        row.update({f"report_{k}": statements[k] if k < len(statements) else None for k in range(18)})
        row.update({c: 1 for c in ["bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset",
                                   "qrs_end", "t_end", "p_axis", "qrs_axis", "t_axis"]})
        measurements.append(row)
    records.append({"subject_id": 10000009, "study_id": 40000009, "file_name": 40000009, "ecg_time": "x",
                    "path": "files/p1000/p10000009/s40000009/40000009"})  # no report row, no files
    pd.DataFrame(records).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(measurements).to_csv(root / "machine_measurements.csv", index=False)
    return root


def test_mimic_reports_leads_and_patient_split(ds_mimic_raw, tmp_path):
    mimic_iv_ecg.build(ds_mimic_raw, tmp_path / "out", val_fraction=0.5)
    dataset = datasets.load_from_disk(str(tmp_path / "out"))
    rows = rows_by_id(dataset)
    assert {rid: row["report"] for rid, (_, row) in rows.items()} == {
        "40000001": "sinus rhythm. normal ecg.",
        "40000002": "sinus tachycardia. abnormal ecg.",
        "40000004": "atrial fibrillation. low qrs voltages. abnormal ecg.",
    }
    expected = lead_coded_signal().T  # canonical order, although the files store aVF before aVL
    for _, row in rows.values():
        np.testing.assert_allclose(row["ecg"], expected, atol=1e-3)
    for rid, (split, row) in rows.items():
        assert split == deterministic_split(row["patient_id"], (0.5, 0.5, 0.0))
    assert rows["40000001"][0] == rows["40000002"][0]  # one patient, one split
    dropped = summary_of(tmp_path / "out")["dropped"]
    assert dropped == {"report shorter than 4 words": 1, "no row in machine_measurements.csv": 1}
    assert "labels" not in dataset["train"].features and label_names(dataset) == []
    card = check_dataset_card(tmp_path / "out", dataset, license="other")
    assert card.data.task_categories == ["feature-extraction"] and "do not push" in card.text
    assert "| 1 | report shorter than 4 words |" in card.text


def test_mimic_float16_option(ds_mimic_raw, tmp_path):
    dataset = mimic_iv_ecg.build(ds_mimic_raw, tmp_path / "out", signal_dtype="float16", val_fraction=0.0)
    assert dataset["train"].features["ecg"].dtype == "float16"
    np.testing.assert_allclose(dataset["train"].with_format("numpy")[0]["ecg"], lead_coded_signal().T, atol=2e-3)


def test_mimic_missing_column_is_named(ds_mimic_raw, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.read_csv(ds_mimic_raw / "record_list.csv").drop(columns=["path"]).to_csv(raw / "record_list.csv")
    (raw / "machine_measurements.csv").write_text((ds_mimic_raw / "machine_measurements.csv").read_text())
    with pytest.raises(ValueError, match="record_list.csv lacks column\\(s\\) path"):
        mimic_iv_ecg.build(raw, tmp_path / "out")


def test_mimic_interrupted_preparation_resumes_without_redoing_shards(tmp_path):
    raw = synthetic.write_mimic_layout(tmp_path / "raw", 12, seed=5)
    out = tmp_path / "out"
    assert mimic_iv_ecg.build(raw, out, shard_size=4, stop_after_shards=2) is None  # "killed" after 2 shards
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["shards"]) == ["0", "1"]
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/shard-*.arrow")}
    assert finished and not list(out.glob("*/*.partial"))
    dataset = mimic_iv_ecg.build(raw, out, shard_size=4)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # untouched on resume
    assert sorted(json.loads((out / MANIFEST).read_text())["shards"]) == ["0", "1", "2"]
    ids = sorted(rid for split in dataset for rid in dataset[split]["record_id"])
    assert ids == [str(40000000 + i) for i in range(12)]
    with pytest.raises(FileExistsError, match="different settings"):
        mimic_iv_ecg.build(raw, out, shard_size=5)


# ---------------------------------------------------------------------------------------------------------------
# CPSC2018 (original .mat + REFERENCE.csv) and CSN (CinC WFDB layout)
# ---------------------------------------------------------------------------------------------------------------
def test_cpsc_original_layout_labels_and_both_protocols(tmp_path):
    raw = tmp_path / "cpsc"
    raw.mkdir()
    lengths = {"A0001": 7500, "A0002": 3000, "A0003": 5000, "A0004": 5000}
    for name, length in lengths.items():
        savemat(raw / f"{name}.mat", {"ECG": {"sex": "Male", "age": 60.0, "data": lead_coded_signal(length / 500).T}})
    (raw / "A0004.mat").write_bytes(b"not a mat file")
    pd.DataFrame({"Recording": ["A0001", "A0002", "A0003", "A0004", "A0005"], "First_label": [1, 2, 7, 3, 4],
                  "Second_label": [None, 5, 9, None, None], "Third_label": [None, None, 8, None, None]}).to_csv(
        raw / "REFERENCE.csv", index=False)
    dataset = cpsc2018.build(raw, tmp_path / "out")  # protocol "tamer": records of at least 10 s, cut to 10 s
    rows = rows_by_id(dataset)
    names = label_names(dataset)
    assert {rid: named(row, names) for rid, (_, row) in rows.items()} == {
        "A0001": {"NORM"}, "A0003": {"VPC", "STE", "STD"}}
    full = lead_coded_signal().T
    np.testing.assert_allclose(rows["A0001"][1]["ecg"], full, atol=1e-5)  # first 10 s of 15 s
    dropped = summary_of(tmp_path / "out")["dropped"]
    assert dropped["listed in REFERENCE.csv but no .mat file"] == 1
    assert sum(v for k, v in dropped.items() if "unreadable" in k) == 1
    assert dropped["shorter than 10 s (protocol tamer keeps records of at least 10 s)"] == 1  # A0002, 6 s
    split = tmp_path / "icbeb_test.csv"  # MERL's split files name records in the `filename` column
    pd.DataFrame({"filename": ["A0001", "A0002", "A0003"]}).to_csv(split, index=False)
    merl = rows_by_id(cpsc2018.build(raw, tmp_path / "merl", protocol="merl", split_files={"test": str(split)}))
    assert {rid: named(row, names) for rid, (_, row) in merl.items()} == {
        "A0001": {"NORM"}, "A0002": {"AFIB", "CRBBB"}, "A0003": {"VPC", "STE", "STD"}}
    for _, row in merl.values():
        np.testing.assert_allclose(row["ecg"][:, :2500], full[:, :2500], atol=1e-5)
        assert not row["ecg"][:, 2500:].any()


CONDITIONS = """AcronymName,FullName,Snomed_CT
1AVB,1 degree atrioventricular block,270492004
LBBB,left bundle branch block,164909002
LBBBB,left back bundle branch block,164909002
SB,Sinus Bradycardia,426177001
SR,Sinus Rhythm,426783006
AFIB,Atrial Fibrillation,164889003
ST,Sinus Tachycardia,427084000
AF,Atrial Flutter,164890007
STE,ST extension,164930006
"""
CSN_DX = {"JS00001": "164889003", "JS00002": "164930006,427084000", "JS00003": "1649300061,426783006",
          "JS00004": "426177001", "JS00005": "164909002,270492004", "JS00006": "164890007"}


@pytest.fixture(scope="module")
def ds_csn_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("csn")
    (root / "ConditionNames_SNOMED-CT.csv").write_text(CONDITIONS)
    for i, (name, dx) in enumerate(CSN_DX.items()):
        write_record(root / "WFDBRecords" / "01" / f"01{i}", name, lead_coded_signal(),
                     comments=["Age: 60", "Sex: Female", f"Dx: {dx}", "Rx: Unknown"])
    return root


def test_csn_snomed_codes_match_exactly_never_by_substring(ds_csn_raw, tmp_path):
    dataset = csn.build(ds_csn_raw, tmp_path / "out")
    names = label_names(dataset)
    assert names == list(csn.MERL_LABELS)
    got = {rid: named(row, names) for rid, (_, row) in rows_by_id(dataset).items()}
    assert got == {"JS00001": {"AFIB"},  # not AF
                   "JS00002": {"STE", "ST"},  # STE because of its own code, ST because of 427084000
                   "JS00003": {"SR"},  # 1649300061 contains STE's code but is another code
                   "JS00005": {"LBBB", "1AVB"},  # first acronym of a shared code wins
                   "JS00006": {"AF"}}
    summary = summary_of(tmp_path / "out")
    assert summary["dropped"] == {"no label of the label set": 1}  # SB is not a MERL class
    assert summary["notes"] == {"SNOMED code 1649300061 not in the condition table": 1,
                                "label SB is not in the label set (--label_set all keeps it)": 1}
    check_dataset_card(tmp_path / "out", dataset, license="cc-by-4.0")
    everything = csn.build(ds_csn_raw, tmp_path / "all", label_set="all")
    assert label_names(everything) == ["1AVB", "LBBB", "LBBBB", "SB", "SR", "AFIB", "ST", "AF", "STE"]
    assert named(rows_by_id(everything)["JS00004"][1], label_names(everything)) == {"SB"}


def test_csn_merl_protocol_uses_the_shipped_label_csv(ds_csn_raw, tmp_path):
    columns = ["ecg_path", "age", "diagnose"] + list(csn.MERL_LABELS)

    def merl_row(name, positives):
        return [f"/chapman/WFDBRecords/01/010/{name}.mat", 12, ",".join(positives)] + [
            int(n in positives) for n in csn.MERL_LABELS]

    files = {}
    for split, entries in (("train", [("JS00001", ["AF", "AFIB"])]), ("val", [("JS00002", ["ST", "STE"])]),
                           ("test", [("JS00005", ["LBBB"]), ("JS09999", ["SR"])])):
        files[split] = tmp_path / f"chapman_{split}.csv"
        pd.DataFrame([merl_row(*e) for e in entries], columns=columns).to_csv(files[split], index=False)
    dataset = csn.build(ds_csn_raw, tmp_path / "out", protocol="merl", split_files=files)
    got = {rid: (split, named(row, label_names(dataset))) for rid, (split, row) in rows_by_id(dataset).items()}
    assert got == {"JS00001": ("train", {"AF", "AFIB"}), "JS00002": ("validation", {"ST", "STE"}),
                   "JS00005": ("test", {"LBBB"})}
    summary = summary_of(tmp_path / "out")
    assert summary["dropped"]["not in the external split files"] == 3
    counts = {"train": 1, "validation": 1, "test": 1}
    assert summary["protocol"] == "merl" and summary["num_records"] == counts
    assert dataset_metadata(dataset)["protocol"] == "merl" and dataset_metadata(dataset)["num_records"] == counts

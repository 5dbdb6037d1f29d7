"""CPSC2018 under the two paper protocols, on records in the PhysioNet/CinC layout (wfdb.wrsamp + MAT v4 `val`).

- tamer: records of at least 10 s are kept and cut to their first 10 s, shorter ones dropped (TAMER §4.2.1).
- merl: MERL's loader as shipped (finetune_dataset.py): `ecg[:, :2500]`, 2,500 zeros appended, `[:, :5000]`.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.io import savemat

from datasets_scripts import LEADS, cpsc2018, label_names
from datasets_scripts.common import dataset_metadata
from datasets_scripts.prepare import SUMMARY
from test_datasets_card import check_dataset_card

MERL_ICBEB = Path(__file__).resolve().parents[2] / "shared/reference/merl/data_split/icbeb"
GAIN = 1000.0  # ADC units per mV, as in the CinC-2020 CPSC headers: quantisation step 1 uV
QUANTISATION_MV = 0.5 / GAIN
TAMER_DROP = "shorter than 10 s (protocol tamer keeps records of at least 10 s)"

# record: (seconds, SNOMED codes); 8 s is below TAMER's 10 s, 30 s must be cut to its first 10 s
RECORDS = {"A0001": (8, "164889003"), "A0002": (10, "426783006"), "A0003": (30, "59118001,164931005")}
LABELS = {"A0001": {"AFIB"}, "A0002": {"NORM"}, "A0003": {"CRBBB", "STE"}}


def time_coded_signal(seconds, fs=500):
    """(T, 12) mV that differs along the whole record (sine + ramp per lead), so any shift or wrong cut shows."""
    t = np.arange(int(round(seconds * fs))) / fs
    return np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * (1.1 + 0.2 * k) * t) + 0.02 * t for k in range(12)], axis=1)


def write_cinc_record(directory: Path, name: str, signal_t12, dx: str, fs=500):
    """<name>.hea with `# Dx:` + <name>.mat (MAT v4 `val`, int16 12 x N at offset 24), as PhysioNet ships CPSC2018."""
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(LEADS), p_signal=signal_t12, fmt=["16"] * 12,
                adc_gain=[GAIN] * 12, baseline=[0] * 12, write_dir=str(directory),
                comments=["Age: 53", "Sex: Male", f"Dx: {dx}", "Rx: Unknown", "Hx: Unknown", "Sx: Unknown"])
    dat = directory / f"{name}.dat"
    digital = np.fromfile(dat, dtype="<i2").reshape(-1, 12).T  # (12, T)
    savemat(directory / f"{name}.mat", {"val": digital}, format="4")
    header = directory / f"{name}.hea"
    header.write_text(header.read_text().replace(f"{name}.dat 16 ", f"{name}.mat 16+24 "))
    dat.unlink()


def write_icbeb_split(directory: Path, membership: dict) -> dict:
    """MERL-style icbeb_{train,val,test}.csv (its columns; labels unused by the builder) -> split_files."""
    columns = ["patient_id", "ecg_id", "filename", "validation", "age", "sex", "scp_codes"] + list(cpsc2018.CPSC_LABELS)
    files = {}
    for split, file_split in (("train", "train"), ("validation", "val"), ("test", "test")):
        rows = [[i, i, name, False, 53.0, 1, "{}"] + [0] * 9 for i, (name, s) in enumerate(membership.items())
                if s == split]
        files[split] = str(directory / f"icbeb_{file_split}.csv")
        pd.DataFrame(rows, columns=columns).to_csv(files[split], index=False)
    return files


def rows_by_id(dataset):
    return {row["record_id"]: (split, row) for split in dataset for row in dataset[split].with_format("numpy")}


def written(name):
    seconds = RECORDS[name][0]
    return time_coded_signal(seconds).T  # (12, T) mV as written, before quantisation


def merl_loader_array(record_path):
    """What MERL's icbeb branch builds before min-max and its aVL/aVF swap (finetune/finetune_dataset.py)."""
    ecg = wfdb.rdsamp(str(record_path))[0].T  # (12, n)
    ecg = ecg[:, :2500]
    ecg = np.pad(ecg, ((0, 0), (0, 2500)), "constant", constant_values=0)
    return ecg[:, :5000]  # (12, 5000)


@pytest.fixture(scope="module")
def cpsc_cinc_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpsc_cinc")
    for name, (seconds, dx) in RECORDS.items():
        write_cinc_record(root / "g1", name, time_coded_signal(seconds), dx)
    return root


@pytest.fixture(scope="module")
def merl_split(tmp_path_factory):
    return write_icbeb_split(tmp_path_factory.mktemp("split"),
                             {"A0001": "train", "A0002": "validation", "A0003": "test"})


def test_tamer_drops_the_8_s_record_keeps_10_s_and_cuts_30_s_to_its_first_10_s(cpsc_cinc_raw, tmp_path):
    dataset = cpsc2018.build(cpsc_cinc_raw, tmp_path / "out", protocol="tamer", num_workers=2, shard_size=2)
    rows = rows_by_id(dataset)
    assert sorted(rows) == ["A0002", "A0003"]
    np.testing.assert_allclose(rows["A0002"][1]["ecg"], written("A0002"), rtol=0, atol=QUANTISATION_MV + 1e-6)
    np.testing.assert_allclose(rows["A0003"][1]["ecg"], written("A0003")[:, :5000], rtol=0,
                               atol=QUANTISATION_MV + 1e-6)
    for name in ("A0002", "A0003"):  # sample for sample what an independent reader gives for the first 10 s
        values = wfdb.rdsamp(str(cpsc_cinc_raw / "g1" / name))[0].T
        np.testing.assert_allclose(rows[name][1]["ecg"], values[:, :5000], rtol=0, atol=1e-6)
        assert {label_names(dataset)[i] for i in rows[name][1]["labels"]} == LABELS[name]
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    assert summary["dropped"] == {TAMER_DROP: 1}
    assert summary["examples"][TAMER_DROP] == ["A0001"]


def test_tamer_is_the_default_and_its_counts_are_in_the_metadata(cpsc_cinc_raw, merl_split, tmp_path, capsys):
    dataset = cpsc2018.build(cpsc_cinc_raw, tmp_path / "out", split_files=merl_split)
    counts = {"train": 0, "validation": 1, "test": 1}  # A0001 (train) is the 8 s record
    meta = dataset_metadata(dataset)
    assert meta["protocol"] == "tamer" and meta["num_records"] == counts
    assert meta["label_names"] == list(cpsc2018.CPSC_LABELS)
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    assert summary["protocol"] == "tamer" and summary["num_records"] == counts
    assert {split: len(dataset[split]) for split in dataset} == counts
    assert "[cpsc2018] protocol=tamer: train=0, validation=1, test=1 records (total 2)" in capsys.readouterr().err
    card = check_dataset_card(tmp_path / "out", dataset, license="cc-by-4.0")
    assert "- `protocol`: tamer" in card.text and "test = `icbeb_test.csv`" in card.text


def test_merl_keeps_the_first_2500_samples_then_zeros_exactly_as_its_loader(cpsc_cinc_raw, merl_split, tmp_path):
    dataset = cpsc2018.build(cpsc_cinc_raw, tmp_path / "out", protocol="merl", split_files=merl_split)
    rows = rows_by_id(dataset)
    assert {name: split for name, (split, _) in rows.items()} == {"A0001": "train", "A0002": "validation",
                                                                  "A0003": "test"}
    for name in RECORDS:  # the 8 s record too: MERL keeps every record
        ecg = rows[name][1]["ecg"]
        assert ecg.shape == (12, 5000) and ecg.dtype == np.float32
        np.testing.assert_allclose(ecg[:, :2500], written(name)[:, :2500], rtol=0, atol=QUANTISATION_MV + 1e-6)
        assert np.array_equal(ecg[:, 2500:], np.zeros((12, 2500), dtype=np.float32))
        np.testing.assert_allclose(ecg, merl_loader_array(cpsc_cinc_raw / "g1" / name), rtol=0, atol=1e-6)
    meta = dataset_metadata(dataset)
    assert meta["protocol"] == "merl" and meta["num_records"] == {"train": 1, "validation": 1, "test": 1}
    assert json.loads((tmp_path / "out" / SUMMARY).read_text())["dropped"] == {}


def test_merl_array_through_the_feature_extractor_equals_merl_normalised_input(cpsc_cinc_raw, merl_split, tmp_path):
    from tamer_hf import TamerFeatureExtractor

    dataset = cpsc2018.build(cpsc_cinc_raw, tmp_path / "out", protocol="merl", split_files=merl_split)
    stored = rows_by_id(dataset)["A0003"][1]["ecg"]
    model_input = TamerFeatureExtractor()(stored, sampling_rate=500, return_tensors="np")["input_values"][0]
    merl = merl_loader_array(cpsc_cinc_raw / "g1" / "A0003")
    merl = (merl - merl.min()) / (merl.max() - merl.min() + 1e-8)  # min-max after padding: zeros are not 0 here
    np.testing.assert_allclose(model_input, merl, rtol=0, atol=1e-6)  # canonical order: MERL then swaps aVL/aVF


def test_tamer_length_rule_is_in_seconds_whatever_the_sampling_rate(tmp_path):
    raw = tmp_path / "raw"
    write_cinc_record(raw, "A0101", time_coded_signal(10, fs=1000), "426783006", fs=1000)  # 10,000 samples: kept
    write_cinc_record(raw, "A0102", time_coded_signal(9, fs=1000), "426783006", fs=1000)  # 9,000 samples: dropped
    rows = rows_by_id(cpsc2018.build(raw, tmp_path / "out"))
    assert sorted(rows) == ["A0101"]
    resampled, expected = rows["A0101"][1]["ecg"], time_coded_signal(10).T  # 1000 -> 500 Hz, filter edges aside
    np.testing.assert_allclose(resampled[:, 50:-50], expected[:, 50:-50], rtol=0, atol=0.01)


def test_a_flat_lead_drops_nothing_under_either_protocol(tmp_path):
    signal = time_coded_signal(12)
    signal[:, LEADS.index("V3")] = 0.0  # a disconnected lead; neither paper drops such a record
    write_cinc_record(tmp_path / "raw", "A0201", signal, "426783006")
    split = write_icbeb_split(tmp_path, {"A0201": "test"})
    for protocol in ("tamer", "merl"):
        dataset = cpsc2018.build(tmp_path / "raw", tmp_path / protocol, protocol=protocol, split_files=split)
        assert dataset_metadata(dataset)["num_records"] == {"train": 0, "validation": 0, "test": 1}


def test_bad_protocol_and_merl_without_its_split_are_named(cpsc_cinc_raw, tmp_path):
    with pytest.raises(ValueError, match="unknown protocol 'default' \\(tamer or merl\\)"):
        cpsc2018.build(cpsc_cinc_raw, tmp_path / "o", protocol="default")
    with pytest.raises(ValueError, match="protocol='merl' is MERL's split and loader: pass split_files"):
        cpsc2018.build(cpsc_cinc_raw, tmp_path / "o", protocol="merl")


def test_cli_protocol_switch(cpsc_cinc_raw, merl_split, tmp_path, capsys):
    from datasets_scripts import cli

    split_args = [f"{split}={path}" for split, path in merl_split.items()]
    cli.run(cpsc2018.main, ["--raw_dir", str(cpsc_cinc_raw), "--output_dir", str(tmp_path / "merl"),
                            "--protocol", "merl", "--split_files", *split_args])
    summary = json.loads((tmp_path / "merl" / SUMMARY).read_text())
    assert summary["protocol"] == "merl" and summary["num_records"] == {"train": 1, "validation": 1, "test": 1}
    with pytest.raises(SystemExit) as exit_info:
        cli.run(cpsc2018.main, ["--raw_dir", str(cpsc_cinc_raw), "--output_dir", str(tmp_path / "m2"),
                                "--protocol", "merl"])
    assert exit_info.value.code == 2
    assert "error: protocol='merl' is MERL's split and loader" in capsys.readouterr().err


def test_merl_icbeb_split_files_as_shipped_decide_membership_under_both_protocols(tmp_path):
    if not MERL_ICBEB.is_dir():
        pytest.skip("MERL split files not available")
    files = {split: str(MERL_ICBEB / f"icbeb_{name}.csv")
             for split, name in (("train", "train"), ("validation", "val"), ("test", "test"))}
    chosen = {}
    for split, path in files.items():
        table = pd.read_csv(path)
        assert len(table) == {"train": 4950, "validation": 551, "test": 1376}[split]  # 6,877 records as shipped
        for name in table["filename"].iloc[:2]:
            chosen[name] = split
    raw = tmp_path / "raw"
    for i, name in enumerate(sorted(chosen)):  # the first record of each split lasts 8 s
        seconds = 8 if name == min(n for n, s in chosen.items() if s == chosen[name]) else 10 + i
        write_cinc_record(raw, name, time_coded_signal(seconds), "426783006")
    merl = cpsc2018.build(raw, tmp_path / "merl", protocol="merl", split_files=files)
    assert {name: split for name, (split, _) in rows_by_id(merl).items()} == chosen
    assert dataset_metadata(merl)["num_records"] == {"train": 2, "validation": 2, "test": 2}
    tamer = cpsc2018.build(raw, tmp_path / "tamer", protocol="tamer", split_files=files)
    assert dataset_metadata(tamer)["num_records"] == {"train": 1, "validation": 1, "test": 1}

"""The synthetic generator: conditions must be measurable in the signal, the corpus must follow the data contract."""

import datasets
import numpy as np
import pytest
from scipy.signal import butter, filtfilt, find_peaks

from datasets_scripts import LEADS, label_names
from datasets_scripts.synthetic import SYNTHETIC_LABELS, generate, iter_records, synthesize_ecg

FS = 500


# ---- independent measurements (band-pass energy R detection, median beat, spatial velocity) ----------------------
def r_peaks(signal):
    b, a = butter(2, [5 / (FS / 2), 30 / (FS / 2)], "band")
    energy = np.sqrt((filtfilt(b, a, signal, axis=1) ** 2).sum(0))
    peaks, _ = find_peaks(energy, height=0.4 * np.percentile(energy, 99.5), distance=int(0.25 * FS))
    return peaks


def median_beat(signal, before=0.3, after=0.6):
    b, a = int(before * FS), int(after * FS)
    beats = [signal[:, p - b:p + a] for p in r_peaks(signal) if p - b >= 0 and p + a <= signal.shape[1]]
    return np.median(np.stack(beats), 0), b


def qrs_width_ms(signal):
    b, a = butter(2, 40 / (FS / 2))
    beat, r = median_beat(filtfilt(b, a, signal, axis=1))
    velocity = np.convolve(np.abs(np.diff(beat, axis=1)).sum(0), np.ones(5) / 5, "same")
    window = velocity[r - 50:r + 75]
    above = np.flatnonzero(window > 0.2 * window.max())
    return (above[-1] - above[0]) * 1000 / FS


def rr_intervals(signal):
    return np.diff(r_peaks(signal)) / FS


@pytest.mark.parametrize("labels,rate", [(["SR"], 72), (["SBRAD"], 48), (["STACH"], 125), (["SR"], 95)])
def test_measured_heart_rate_matches_stated_rate(labels, rate):
    for seed in range(3):
        signal, stated = synthesize_ecg(labels, np.random.default_rng(seed), heart_rate=rate)
        assert stated == pytest.approx(rate)
        assert 60 / np.median(rr_intervals(signal)) == pytest.approx(rate, abs=3)


def test_rhythm_label_rates_fall_in_their_clinical_ranges():
    for seed in range(5):
        brady, _ = synthesize_ecg(["SBRAD"], np.random.default_rng(seed))
        tachy, _ = synthesize_ecg(["STACH"], np.random.default_rng(seed))
        assert 60 / np.median(rr_intervals(brady)) < 60
        assert 60 / np.median(rr_intervals(tachy)) > 100


def test_atrial_fibrillation_is_irregular_without_p_waves():
    for seed in range(4):
        af, _ = synthesize_ecg(["AFIB"], np.random.default_rng(seed), heart_rate=70)
        sr, _ = synthesize_ecg(["SR"], np.random.default_rng(seed), heart_rate=70)
        rr_af, rr_sr = rr_intervals(af), rr_intervals(sr)
        assert rr_af.std() / rr_af.mean() > 0.1 > 0.05 > rr_sr.std() / rr_sr.mean()
        lead_ii = LEADS.index("II")
        beat_af, r = median_beat(af)
        beat_sr, _ = median_beat(sr)
        p_window = slice(r - 125, r - 30)  # 250 .. 60 ms before R
        assert np.ptp(beat_sr[lead_ii, p_window]) > 0.1
        assert np.ptp(beat_af[lead_ii, p_window]) < 0.08


def test_bundle_branch_blocks_have_wide_qrs():
    for seed in range(3):
        rng = lambda: np.random.default_rng(seed)  # noqa: E731 - same patient, different conduction
        assert qrs_width_ms(synthesize_ecg(["SR"], rng())[0]) < 110
        assert qrs_width_ms(synthesize_ecg(["SR", "CLBBB"], rng())[0]) >= 120
        assert qrs_width_ms(synthesize_ecg(["SR", "CRBBB"], rng())[0]) >= 120


def test_st_elevation_is_measurable_in_the_stated_territory():
    for seed in range(3):
        signal, _ = synthesize_ecg(["SR", "STE"], np.random.default_rng(seed), heart_rate=70, territory="inferior")
        beat, r = median_beat(signal)
        for lead in ("II", "III", "aVF"):
            row = beat[LEADS.index(lead)]
            st_level = row[r + 50] - row[r - 25]  # J+60 ms against the PR segment
            assert st_level >= 0.1


def test_first_degree_block_prolongs_pr_interval():
    for seed in range(3):
        for labels, low, high in ((["SR"], 0.10, 0.20), (["SR", "1AVB"], 0.22, 0.36)):
            signal, _ = synthesize_ecg(labels, np.random.default_rng(seed), heart_rate=65)
            beat, r = median_beat(signal, before=0.5)
            lead_ii = beat[LEADS.index("II")]
            p_peak = r - 200 + np.argmax(lead_ii[r - 200:r - 30])  # P apex 400 .. 60 ms before R
            pr = (r - p_peak) / FS + 0.05  # P apex is ~50 ms after P onset in the model's P wave
            assert low <= pr <= high


def test_records_are_reproducible_and_reports_are_machine_statements():
    first = list(iter_records(20, seed=7))
    again = list(iter_records(20, seed=7))
    for (s1, r1, l1), (s2, r2, l2) in zip(first, again):
        np.testing.assert_array_equal(s1, s2)
        assert (r1, l1) == (r2, l2)
        assert s1.shape == (12, 5000) and s1.dtype == np.float32
        assert r1.endswith(".") and r1 == r1.lower() and len(r1.split()) >= 4
        assert set(l1) <= set(SYNTHETIC_LABELS)
    assert len({r for _, r, _ in first}) > 5  # paraphrase variety


def test_generate_returns_the_data_contract():
    dataset = generate(30, seed=3)
    assert set(dataset) == {"train", "validation", "test"}
    assert sum(len(split) for split in dataset.values()) == 30
    assert label_names(dataset) == list(SYNTHETIC_LABELS)
    row = dataset["train"].with_format("numpy")[0]
    assert row["ecg"].shape == (12, 5000)
    assert dataset["train"].features["labels"] == datasets.List(datasets.ClassLabel(names=list(SYNTHETIC_LABELS)))
    signal, report, labels = next(iter_records(1, seed=3, start=int(row["record_id"].split("-")[-1])))
    np.testing.assert_allclose(row["ecg"], signal)
    assert row["report"] == report
    assert [SYNTHETIC_LABELS[i] for i in row["labels"]] == [n for n in SYNTHETIC_LABELS if n in labels]


def test_the_in_memory_corpus_equals_the_one_written_to_disk(tmp_path):
    """`generate()` builds its Arrow columns over the generated signal buffer (no per-record Python lists, no hashing
    of the table): the same rows, features and label names as the builder's on-disk output."""
    in_memory = generate(40, seed=11)
    on_disk = generate(40, seed=11, output_dir=tmp_path / "synthetic")  # written shard by shard, read back
    for split in ("train", "validation", "test"):
        assert in_memory[split].features == on_disk[split].features
        assert in_memory[split].num_rows == on_disk[split].num_rows
        memory_rows = sorted(in_memory[split].with_format("numpy"), key=lambda row: row["record_id"])
        disk_rows = sorted(on_disk[split].with_format("numpy"), key=lambda row: row["record_id"])
        for a, b in zip(memory_rows, disk_rows):
            assert a["record_id"] == b["record_id"] and a["report"] == b["report"]
            np.testing.assert_array_equal(a["labels"], b["labels"])
            np.testing.assert_array_equal(a["ecg"], b["ecg"])
    assert in_memory["train"]._fingerprint == generate(40, seed=11)["train"]._fingerprint  # names its inputs
    assert in_memory["train"]._fingerprint != generate(40, seed=12)["train"]._fingerprint

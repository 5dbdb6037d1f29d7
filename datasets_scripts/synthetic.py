"""Synthetic 12-lead ECGs with machine-style reports and labels: the embedded default corpus of the project.

Model: the heart is a moving dipole; every wave (P, septal q, R, S, R', T, flutter/fibrillation activity) is a
Gaussian in time with a 3-D direction (x = patient's left, y = inferior, z = anterior). A lead sees the dot product
of the dipole with its lead vector; the limb leads are derived from I and II so Einthoven's law holds
(III = II - I, aVR = -(I + II)/2, ...). ST shifts and T inversion are lead-territory effects added per lead.
Beat templates are built once per record and placed at the scheduled P / QRS times (vectorised numpy), which is
what makes thousands of records per second possible.

Label codes (SYNTHETIC_LABELS, always this order, the same short codes as PTB-XL/CPSC):
  NORM normal ECG | SR sinus rhythm | SBRAD sinus bradycardia | STACH sinus tachycardia | AFIB atrial fibrillation
  AFLT atrial flutter | 1AVB first-degree AV block | 2AVB second-degree AV block (Mobitz II; optional)
  3AVB third-degree AV block (optional) | CLBBB complete LBBB | CRBBB complete RBBB | STE ST elevation
  STD ST depression | INVT T-wave inversion | PVC premature ventricular complex | PAC premature atrial complex
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .card import SourceCard
from .common import (LEADS, TARGET_FS, TARGET_LEN, dataset_description, deterministic_split, ecg_features,
                     in_memory_split, label_indices)

SYNTHETIC_LABELS = ("NORM", "SR", "SBRAD", "STACH", "AFIB", "AFLT", "1AVB", "2AVB", "3AVB", "CLBBB", "CRBBB",
                    "STE", "STD", "INVT", "PVC", "PAC")

CARD = SourceCard(
    pretty_name="Synthetic 12-lead ECGs with reports (tamer-hf)", license="apache-2.0", homepage=None, citation=None,
    summary="Synthetic 10 s 12-lead ECGs from a moving-dipole model, each with a machine-style report and "
            "multi-label codes; record i depends only on (seed, i). For tests and the quick start, not for clinical "
            "conclusions.",
    split_rule="A hash of the record id: about 80 / 10 / 10 %.",
    tags=["synthetic"],
)

_TIME = np.arange(TARGET_LEN) / TARGET_FS  # (5000,) seconds
_LEAD = {name: i for i, name in enumerate(LEADS)}


def _lead_vectors() -> np.ndarray:
    """(12, 3) lead vectors in (left, inferior, anterior) coordinates; limb leads obey Einthoven's law."""
    lead_i, lead_ii = np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.866, 0.0])
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    chest_angles = np.deg2rad([115, 95, 78, 60, 35, 10])  # V1..V6 around the chest, from the patient's left
    chest = [1.4 * np.array([np.cos(a), 0.0, np.sin(a)]) for a in chest_angles]
    return np.array(limb + chest)


LEAD_VECTORS = _lead_vectors()

# ST/T territories: affected leads and reciprocal leads
_TERRITORIES = {
    "inferior": (("II", "III", "aVF"), ("I", "aVL")),
    "anterior": (("V1", "V2", "V3", "V4"), ("III", "aVF")),
    "lateral": (("I", "aVL", "V5", "V6"), ("III", "aVF")),
}

_PHRASES = {
    "SR": ["sinus rhythm", "normal sinus rhythm", "sinus rhythm with normal rate"],
    "SBRAD": ["sinus bradycardia", "sinus rhythm, slow rate", "sinus bradycardia with normal conduction"],
    "STACH": ["sinus tachycardia", "sinus rhythm, fast rate", "sinus tachycardia with normal axis"],
    "AFIB": ["atrial fibrillation", "atrial fibrillation with irregular ventricular response",
             "atrial fibrillation with uncontrolled ventricular rate"],
    "AFLT": ["atrial flutter", "atrial flutter with regular ventricular response", "flutter waves present"],
    "1AVB": ["1st degree av block", "first degree a-v block", "prolonged pr interval"],
    "2AVB": ["2nd degree av block, mobitz ii", "second degree atrioventricular block"],
    "3AVB": ["complete heart block", "3rd degree av block", "third degree a-v block with ventricular escape"],
    "CLBBB": ["left bundle branch block", "complete left bundle branch block", "lbbb"],
    "CRBBB": ["right bundle branch block", "complete right bundle branch block", "rbbb"],
    "STE": ["st elevation, consider {territory} injury", "{territory} st elevation",
            "st elevation in {territory} leads"],
    "STD": ["st depression", "st depression, consider ischemia", "lateral st depression"],
    "INVT": ["t wave inversion in {territory} leads", "{territory} t wave inversion",
             "inverted t waves, consider {territory} ischemia"],
    "PVC": ["with premature ventricular complexes", "pvc(s)", "ventricular premature complex"],
    "PAC": ["with premature atrial complexes", "pac(s)", "atrial premature complex"],
}


# ----------------------------------------------------------------------------------------------------------------
# condition sampling
# ----------------------------------------------------------------------------------------------------------------
def sample_conditions(rng: np.random.Generator, include_av_blocks: bool = False) -> list[str]:
    """Draw a plausible combination of label codes for one record."""
    rhythms = ["SR", "SBRAD", "STACH", "AFIB", "AFLT"] + (["2AVB", "3AVB"] if include_av_blocks else [])
    weights = np.array([0.45, 0.12, 0.13, 0.15, 0.07] + ([0.04, 0.04] if include_av_blocks else []))
    rhythm = rhythms[rng.choice(len(rhythms), p=weights / weights.sum())]
    labels = [rhythm] if rhythm not in ("2AVB", "3AVB") else ["SR", rhythm] if rhythm == "2AVB" else [rhythm]
    sinus = rhythm in ("SR", "SBRAD", "STACH")
    if sinus and rng.random() < 0.08:
        labels.append("1AVB")
    bundle = rng.random()
    if bundle < 0.06:
        labels.append("CLBBB")
    elif bundle < 0.14:
        labels.append("CRBBB")
    if "CLBBB" not in labels:
        if rng.random() < 0.07:
            labels.append("STE")
        elif rng.random() < 0.08:
            labels.append("STD")
        if rng.random() < 0.08:
            labels.append("INVT")
    if rhythm != "3AVB" and rng.random() < 0.08:
        labels.append("PVC")
    if sinus and rng.random() < 0.07:
        labels.append("PAC")
    if labels == ["SR"]:
        labels = ["NORM", "SR"]
    return labels


# ----------------------------------------------------------------------------------------------------------------
# waveform model
# ----------------------------------------------------------------------------------------------------------------
def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Small random rotation of the heart's axis (±20° frontal, ±15° horizontal): patient variety."""
    a, b = np.deg2rad(rng.uniform(-20, 20)), np.deg2rad(rng.uniform(-15, 15))
    frontal = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    horizontal = np.array([[np.cos(b), 0, -np.sin(b)], [0, 1, 0], [np.sin(b), 0, np.cos(b)]])
    return frontal @ horizontal


def _waves_to_leads(local_time, waves, rotation) -> np.ndarray:
    """waves: list of (centre s, width s, 3-D amplitude mV) -> (12, len(local_time)) lead signals."""
    centres = np.array([w[0] for w in waves])[:, None]  # (W, 1)
    widths = np.array([w[1] for w in waves])[:, None]
    directions = np.array([w[2] for w in waves]) @ rotation.T  # (W, 3)
    shapes = np.exp(-0.5 * ((local_time[None, :] - centres) / widths) ** 2)  # (W, L)
    return (LEAD_VECTORS @ directions.T) @ shapes  # (12, L)


def _qrs_t_waves(kind: str, labels, rr: float, rng) -> list:
    """Waves of one ventricular beat relative to the R peak (t = 0), for beat `kind` normal | pvc | escape."""
    scale = rng.uniform(0.8, 1.2)
    qt = 0.40 * np.sqrt(rr)  # Bazett-like QT adaptation to the cycle length
    t_centre = qt - 0.10
    if kind == "pvc":
        wide = [(-0.01, 0.028, scale * np.array([-0.7, -0.6, 0.6]) * 1.6)]
        return wide + [(t_centre + 0.03, 0.06, -0.35 * np.array([-0.7, -0.6, 0.6]))]
    if "CLBBB" in labels:
        r_dir = np.array([0.8, 0.3, -0.7])
        qrs = [(-0.02, 0.022, scale * 1.1 * r_dir), (0.035, 0.022, scale * 1.0 * r_dir)]  # broad notched R
        t_wave = [(t_centre + 0.02, 0.055, -0.30 * r_dir)]  # secondary, discordant T
        return qrs + t_wave
    qrs = [(-0.028, 0.008, scale * np.array([-0.6, 0.1, 0.6]) * 0.15),  # septal q (left -> right, anterior)
           (0.0, 0.011, scale * np.array([0.7, 0.6, -0.35]) * 1.4),  # R
           (0.028, 0.010, scale * np.array([-0.3, -0.4, -0.5]) * 0.5)]  # S (terminal, posterior-superior)
    t_dir = np.array([0.6, 0.5, 0.3])
    if kind == "escape":
        qrs = [(c * 1.6, w * 1.7, a) for c, w, a in qrs]
    if "CRBBB" in labels:
        qrs.append((0.065, 0.018, scale * np.array([-0.5, 0.0, 0.8]) * 0.8))  # late R' (right, anterior)
        t_dir = t_dir + np.array([0.0, 0.0, -0.25])
    return qrs + [(t_centre - 0.02, 0.05, 0.30 * t_dir), (t_centre + 0.03, 0.03, 0.12 * t_dir)]


def _st_t_changes(labels, rr: float, rng, local_time, beat: np.ndarray, territory: str) -> np.ndarray:
    """Per-lead ST shift (plateau from the J point into the T wave) and T inversion on a (12, L) beat."""
    j_point, t_centre = (0.08 if "CRBBB" in labels else 0.045), 0.40 * np.sqrt(rr) - 0.10
    plateau = 1 / (1 + np.exp(-(local_time - j_point) / 0.004)) / (1 + np.exp(-(t_centre - local_time) / 0.03))
    affected, reciprocal = _TERRITORIES[territory]
    shift = np.zeros(len(LEADS))  # (12,) mV
    if "STE" in labels:
        shift[[_LEAD[n] for n in affected]] = rng.uniform(0.15, 0.35)
        shift[[_LEAD[n] for n in reciprocal]] = -rng.uniform(0.05, 0.12)
    if "STD" in labels:
        shift[[_LEAD[n] for n in ("I", "II", "V4", "V5", "V6")]] = -rng.uniform(0.10, 0.25)
    beat = beat + shift[:, None] * plateau[None, :]
    if "INVT" in labels:
        t_window = np.exp(-0.5 * ((local_time - t_centre) / 0.09) ** 4)  # isolates the T wave, not the QRS
        rows = [_LEAD[n] for n in affected]
        t_part = beat[rows] * t_window
        beat[rows] -= (1 + rng.uniform(0.6, 1.1)) * np.maximum(t_part, 0)  # upright T -> inverted T
    return beat


def _beat_times(labels, heart_rate: float, rng):
    """Schedule of (p_times, p_kinds, qrs_times, qrs_kinds, flutter_rate) over the 10 s strip."""
    rr = 60.0 / heart_rate
    start = rng.uniform(0.1, rr)
    p_times, p_kinds, qrs_times, qrs_kinds = [], [], [], []
    pr = rng.uniform(0.24, 0.34) if "1AVB" in labels else rng.uniform(0.13, 0.19)
    if "AFIB" in labels:
        t = start
        while t < 10.5:
            qrs_times.append(t)
            t += rr * rng.uniform(0.6, 1.4)  # irregularly irregular
        return [], [], qrs_times, ["normal"] * len(qrs_times), pr
    if "3AVB" in labels:
        atrial = rng.uniform(0.7, 0.9)
        p_times = list(np.arange(start, 10.5, atrial))
        qrs_times = list(np.arange(rng.uniform(0.2, 1.5), 10.5, rr))  # independent ventricular escape
        return p_times, ["sinus"] * len(p_times), qrs_times, ["escape"] * len(qrs_times), pr
    premature = {}
    n_beats = int(10.5 / rr) + 2
    for label, kind in (("PVC", "pvc"), ("PAC", "pac")):
        if label in labels:
            for index in rng.choice(np.arange(2, max(3, n_beats - 1)), size=rng.integers(1, 3), replace=False):
                premature.setdefault(int(index), kind)
    t, beat = start, 0
    while t < 10.5:
        kind = premature.get(beat)
        if kind == "pvc":
            qrs_times.append(t - 0.4 * rr)  # early wide beat; the sinus P after it is not conducted
            qrs_kinds.append("pvc")
        elif kind == "pac":
            t = t - 0.3 * rr  # early ectopic P resets the sinus node (non-compensatory pause)
            p_times.append(t - pr)
            p_kinds.append("pac")
            qrs_times.append(t)
            qrs_kinds.append("normal")
        else:
            p_times.append(t - pr)
            p_kinds.append("sinus")
            dropped = "2AVB" in labels and beat % 3 == 2  # Mobitz II 3:2 conduction
            if not dropped:
                qrs_times.append(t)
                qrs_kinds.append("normal")
        t, beat = t + rr * rng.uniform(0.97, 1.03), beat + 1
    return p_times, p_kinds, qrs_times, qrs_kinds, pr


def _place(signal: np.ndarray, template: np.ndarray, offset: int, centre_time: float):
    """Add a (12, L) template whose sample `offset` is its t=0 at `centre_time` into the (12, 5000) strip."""
    start = int(round(centre_time * TARGET_FS)) - offset
    lo, hi = max(start, 0), min(start + template.shape[1], TARGET_LEN)
    if lo < hi:
        signal[:, lo:hi] += template[:, lo - start:hi - start]


def _fibrillation_waves(rng, rotation) -> np.ndarray:
    """Fibrillatory f waves of atrial fibrillation: 4.5-8.5 Hz, frequency-modulated, 0.04-0.09 mV; (12, 5000)."""
    freqs, phases = rng.uniform(4.5, 8.5, 3), rng.uniform(0, 2 * np.pi, 3)
    drift = 0.8 * np.sin(2 * np.pi * 0.3 * _TIME)  # (5000,)
    wave = sum(np.sin(2 * np.pi * f * _TIME + p + drift) for f, p in zip(freqs, phases)) / 3  # (5000,)
    direction = rotation @ np.array([0.2, 0.5, 0.6]) * rng.uniform(0.04, 0.09)
    return (LEAD_VECTORS @ direction)[:, None] * wave[None, :]


def synthesize_ecg(labels, rng: np.random.Generator, heart_rate: float | None = None,
                   noise_mv: float = 0.015, territory: str = "inferior") -> tuple[np.ndarray, float]:
    """One 10 s, 500 Hz, 12-lead ECG in mV showing `labels`; returns (signal (12, 5000) float32, ventricular rate).

    heart_rate: ventricular rate in beats/min; drawn from the rhythm's range when None (SR 60-99, SBRAD 40-58,
    STACH 102-150, AFIB 70-140 mean, AFLT 2:1/3:1/4:1 of a 250-320/min flutter, 3AVB escape 30-45).
    territory: inferior | anterior | lateral, the leads that show STE / INVT.
    """
    rotation = _rotation(rng)
    flutter_ratio = None
    if "AFLT" in labels:
        flutter_ratio = int(rng.choice([2, 3, 4]))
        flutter_rate = rng.uniform(250, 320) if heart_rate is None else heart_rate * flutter_ratio
        heart_rate = flutter_rate / flutter_ratio
    elif heart_rate is None:
        low, high = {"SBRAD": (40, 58), "STACH": (102, 150), "AFIB": (70, 140), "3AVB": (30, 45)}.get(
            next((lab for lab in ("SBRAD", "STACH", "AFIB", "3AVB") if lab in labels), ""), (60, 99))
        heart_rate = rng.uniform(low, high)
    rr = 60.0 / heart_rate
    p_times, p_kinds, qrs_times, qrs_kinds, _ = _beat_times(labels, heart_rate, rng)
    signal = np.zeros((len(LEADS), TARGET_LEN))  # (12, 5000)
    if flutter_ratio is not None:  # sawtooth F waves, negative in the inferior leads, QRS locked to every n-th
        cycle = rr / flutter_ratio
        phase = (_TIME / cycle) % 1.0
        sawtooth = np.where(phase < 0.8, phase / 0.8, (1 - phase) / 0.2) - 0.5  # slow rise, fast fall
        direction = rotation @ np.array([0.1, -0.9, 0.3]) * rng.uniform(0.18, 0.28)
        signal += (LEAD_VECTORS @ direction)[:, None] * sawtooth[None, :]
        qrs_times = list(np.arange(0.15 + cycle * rng.integers(0, flutter_ratio), 10.5, rr))
        qrs_kinds = ["normal"] * len(qrs_times)
        p_times = []
    elif "AFIB" in labels:
        signal += _fibrillation_waves(rng, rotation)
    beat_time = np.arange(-0.25, 0.75, 1 / TARGET_FS)  # (500,) seconds around the R peak
    offset = int(0.25 * TARGET_FS)
    templates = {}
    for kind in dict.fromkeys(qrs_kinds):  # first-seen order: random draws must not depend on the hash seed
        beat = _waves_to_leads(beat_time, _qrs_t_waves(kind, labels, rr, rng), rotation)
        templates[kind] = _st_t_changes(labels, rr, rng, beat_time, beat, territory) if kind != "pvc" else beat
    for time, kind in zip(qrs_times, qrs_kinds):
        _place(signal, templates[kind], offset, time)
    p_time = np.arange(-0.1, 0.1, 1 / TARGET_FS)
    p_direction = {"sinus": np.array([0.5, 0.8, 0.2]) * rng.uniform(0.12, 0.2),
                   "pac": np.array([0.3, -0.7, 0.3]) * rng.uniform(0.1, 0.15)}
    p_templates = {k: _waves_to_leads(p_time, [(0.0, 0.022, d)], rotation) for k, d in p_direction.items()}
    for time, kind in zip(p_times, p_kinds):
        _place(signal, p_templates[kind], int(0.1 * TARGET_FS), time + 0.05)
    signal += _noise(rng, noise_mv)
    return signal.astype(np.float32), 60.0 / rr


_NOISE_BANK = np.random.default_rng(12345).standard_normal(1 << 20).astype(np.float32)  # shared white noise


def _noise(rng: np.random.Generator, noise_mv: float) -> np.ndarray:
    """Baseline wander (respiration-band sinusoids, lead-specific amplitude) + white measurement noise.

    The white noise is a random window of a fixed bank of normals: drawing 60k normals per record was the
    generator's main cost, and a random window is just as unpredictable for the model.
    """
    freqs, phases = rng.uniform(0.1, 0.4, 2), rng.uniform(0, 2 * np.pi, 2)
    basis = np.sin(2 * np.pi * freqs[:, None] * _TIME[None, :] + phases[:, None])  # (2, 5000)
    wander = rng.uniform(-0.06, 0.06, (len(LEADS), 2)) @ basis  # (12, 5000)
    start = rng.integers(0, _NOISE_BANK.size - len(LEADS) * TARGET_LEN)
    white = _NOISE_BANK[start:start + len(LEADS) * TARGET_LEN].reshape(len(LEADS), TARGET_LEN)
    return wander + noise_mv * white


def write_report(labels, rng: np.random.Generator, territory: str = "inferior") -> str:
    """Machine-statement style report ("sinus rhythm. left bundle branch block. abnormal ecg.") with paraphrases."""
    statements = []
    for code in labels:
        if code in _PHRASES:
            options = _PHRASES[code]
            statements.append(options[rng.integers(len(options))].format(territory=territory))
    if "NORM" in labels:
        statements.append("normal ecg")
    elif set(labels) <= {"SR", "SBRAD", "STACH", "1AVB", "PAC"}:
        statements.append(["borderline ecg", "otherwise normal ecg"][rng.integers(2)])
    else:
        statements.append(["abnormal ecg", "abnormal ecg", "abnormal electrocardiogram"][rng.integers(3)])
    return ". ".join(statements) + "."


def iter_records(num_records: int, seed: int = 0, start: int = 0, include_av_blocks: bool = False):
    """Yield (signal (12, 5000) float32 mV, report, label codes) for records start .. start+num_records-1.

    Record i depends only on (seed, i), so any slice can be produced by any worker and is reproducible.
    """
    for index in range(start, start + num_records):
        rng = np.random.default_rng([seed, index])
        labels = sample_conditions(rng, include_av_blocks)
        territory = list(_TERRITORIES)[rng.integers(len(_TERRITORIES))]
        signal, _ = synthesize_ecg(labels, rng, territory=territory)
        yield signal, write_report(labels, rng, territory), labels


# ----------------------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------------------
def _record_id(seed: int, index: int) -> str:
    return f"synth-{seed}-{index:08d}"


def _synthetic_row(task: dict) -> dict:
    signal, report, labels = next(iter_records(1, task["seed"], task["index"], task["include_av_blocks"]))
    return {"ecg": signal, "record_id": task["record_id"], "patient_id": task["patient_id"], "report": report,
            "labels": label_indices(labels, list(SYNTHETIC_LABELS))}


def _task_table(num_records: int, seed: int, include_av_blocks: bool) -> pd.DataFrame:
    ids = [_record_id(seed, i) for i in range(num_records)]
    return pd.DataFrame({"index": np.arange(num_records), "record_id": ids, "patient_id": ids, "seed": seed,
                         "include_av_blocks": include_av_blocks,
                         "split": [deterministic_split(r) for r in ids]})


def generate(num_records: int = 1000, seed: int = 0, output_dir=None, num_workers: int = 1,
             include_av_blocks: bool = False, shard_size: int = 1000, overwrite: bool = False):
    """Synthetic DatasetDict (train/validation/test, ~80/10/10 by a hash of the record id).

    Columns: ecg (12, 5000) float32 mV, record_id, patient_id, report, labels (multi-hot over SYNTHETIC_LABELS).
    In memory when `output_dir` is None, otherwise written shard by shard (and resumable) to `output_dir`.
    """
    from datasets import DatasetDict

    if num_records < 1:
        raise ValueError(f"num_records must be >= 1, got {num_records}")
    if not isinstance(seed, int) or seed < 0:  # numpy's SeedSequence takes non-negative integers only
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    features = ecg_features(SYNTHETIC_LABELS, with_report=True)
    description = dataset_description("synthetic", list(SYNTHETIC_LABELS), seed=seed)
    table = _task_table(num_records, seed, include_av_blocks)
    if output_dir is not None:
        from .prepare import prepare

        return prepare(table, _synthetic_row, features, output_dir, source="synthetic", description=description,
                       config={"source": "synthetic", "seed": seed, "include_av_blocks": include_av_blocks}, card=CARD,
                       num_workers=num_workers, shard_size=shard_size, overwrite=overwrite)
    splits = {}
    for split in ("train", "validation", "test"):
        tasks = table[table["split"] == split].to_dict("records")
        signals = np.empty((len(tasks), len(LEADS), TARGET_LEN), dtype=np.float32)  # (N, 12, 5000): the data itself
        columns = {name: [] for name in features if name != "ecg"}
        for position, task in enumerate(tasks):
            row = _synthetic_row(task)
            signals[position] = row["ecg"]
            for name, values in columns.items():
                values.append(row[name])
        fingerprint = f"synthetic-{num_records}-{seed}-{int(include_av_blocks)}-{split}"
        splits[split] = in_memory_split(signals, columns, features, description, fingerprint)
    return DatasetDict(splits)


# ----------------------------------------------------------------------------------------------------------------
# the same corpus written as raw MIMIC-IV-ECG files (for tests and the preparation benchmark)
# ----------------------------------------------------------------------------------------------------------------
MIMIC_FILE_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
MIMIC_GAIN = 200.0  # adu/mV, as in the MIMIC-IV-ECG headers


def write_wfdb_format16(record_path: Path, signal_mv: np.ndarray, lead_names, gain: float = MIMIC_GAIN):
    """Write a (n_leads, T) mV signal as a WFDB format-16 record (.hea + .dat) readable by wfdb.rdsamp."""
    record_path.parent.mkdir(parents=True, exist_ok=True)
    digital = np.clip(np.round(signal_mv * gain), -32767, 32767).astype("<i2")  # (n, T)
    digital.T.tofile(record_path.with_name(record_path.name + ".dat"))  # interleaved samples
    name = record_path.name
    lines = [f"{name} {len(lead_names)} {TARGET_FS} {signal_mv.shape[1]}"]
    for lead, channel in zip(lead_names, digital):
        checksum = int(channel.astype(np.int64).sum()) % 65536
        checksum = checksum - 65536 if checksum > 32767 else checksum
        lines.append(f"{name}.dat 16 {gain:g}(0)/mV 16 0 {int(channel[0])} {checksum} 0 {lead}")
    record_path.with_name(name + ".hea").write_text("\n".join(lines) + "\n")


def write_mimic_layout(root, num_records: int, seed: int = 0) -> Path:
    """Synthetic records in the MIMIC-IV-ECG download layout: files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat},
    record_list.csv and machine_measurements.csv (report_0..report_17 and the measurement columns)."""
    root = Path(root)
    records, measurements = [], []
    reorder = [LEADS.index(lead) for lead in MIMIC_FILE_LEADS]
    for index, (signal, report, _) in enumerate(iter_records(num_records, seed)):
        subject_id, study_id = 10000000 + index // 2, 40000000 + index  # two studies per patient
        relative = f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"
        write_wfdb_format16(root / relative, signal[reorder], MIMIC_FILE_LEADS)
        records.append({"subject_id": subject_id, "study_id": study_id, "file_name": study_id,
                        "ecg_time": "2180-01-01 00:00:00", "path": relative})
        row = {"subject_id": subject_id, "study_id": study_id, "cart_id": 1, "ecg_time": "2180-01-01 00:00:00"}
        statements = report.rstrip(".").split(". ")
        row.update({f"report_{k}": (statements[k] if k < len(statements) else None) for k in range(18)})
        row.update({"bandwidth": "0.005-150 Hz", "filtering": "60 Hz notch Baseline filter", "rr_interval": 800,
                    "p_onset": 40, "p_end": 150, "qrs_onset": 200, "qrs_end": 290, "t_end": 600, "p_axis": 60,
                    "qrs_axis": 45, "t_axis": 40})
        measurements.append(row)
    pd.DataFrame(records).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(measurements).to_csv(root / "machine_measurements.csv", index=False)
    return root


def main(argv=None):
    parser = cli.ArgumentParser(description="Generate the synthetic ECG-report corpus as a DatasetDict.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_records", type=cli.positive_int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="a non-negative integer (numpy's SeedSequence)")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--shard_size", type=cli.positive_int, default=1000)
    parser.add_argument("--include_av_blocks", action="store_true", help="also draw 2AVB and 3AVB records")
    parser.add_argument("--mimic_layout", action="store_true",
                        help="write raw MIMIC-IV-ECG-style files to output_dir instead of a DatasetDict")
    parser.add_argument("--overwrite", action="store_true")
    cli.add_verbosity_argument(parser)
    args = cli.parse_args(parser, argv)
    if args.mimic_layout:
        write_mimic_layout(args.output_dir, args.num_records, args.seed)
        return
    generate(args.num_records, args.seed, args.output_dir, args.num_workers, args.include_av_blocks,
             args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)

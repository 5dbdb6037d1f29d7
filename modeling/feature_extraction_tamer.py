"""Feature extractor: raw 12-lead ECGs (any rate, length, layout or lead order) -> `input_values` (B, 12, 5000).

Steps, in order: read (array / tensor / list / DataFrame / WFDB path / dict) and validate it (`ecg_validation`) -> put
leads first -> keep the part of the record the model's window uses -> repair or reject NaN/Inf -> flag samples far
outside the record's range (clipped by default) and degenerate signals -> reorder leads by name (derive missing limb
leads, zero-fill others) -> polyphase resampling to 500 Hz -> crop or pad to 10 s -> normalise (default: per-record
min-max over all leads to [0, 1], as MERL and TAMER).

`__call__` prepares one window per record (its first 10 s). `windows` walks a long record window by window, each
prepared by the same steps, reading only that window: from an in-memory array a slice, from a WFDB file only those
bytes (`WfdbRecord`), so a 24 h Holter record never becomes GBs of intermediates.

The signal helpers (lead matching by name, WFDB reading in mV, polyphase resampling, NaN/Inf interpolation, crop or
pad) are module functions: the dataset builders (`datasets_scripts`) use these same ones, with their own policies.
"""

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.utils import logging

from .ecg_signal import CANONICAL_LEADS, stft_magnitude
from .ecg_validation import (OUTLIER_POLICIES, QualityReport, as_numeric_array, check_degenerate, check_duration,
                             check_keywords, check_lead_names, check_sampling_rate, check_wfdb_header_frequency,
                             dataframe_record, dict_record, is_dataframe, repair_outliers, screen_batch,
                             wfdb_record_name, window_count)
from .ecg_wfdb import frames_in_file, import_wfdb, read_digital, read_header, signal_file, to_physical

logger = logging.get_logger(__name__)

NORMALIZATIONS = ("minmax", "zscore", "none")
NAN_POLICIES = ("interpolate", "zero", "raise")
MAX_RATIO_DENOMINATOR = 10_000  # resampling ratios are rounded to p/q, q <= 10 000: the filter stays small for any rate
RESAMPLE_BLOCK = 250  # output samples gathered at once: bounds the (C, block, taps) intermediates (~20 MB each at 20 kHz)
EPSILON = 1e-8  # MERL/MELP min-max denominator guard
LEAD_ALIASES = {"DI": "I", "DII": "II", "DIII": "III"}  # spellings seen in public headers (CODE uses DI/DII/DIII)
UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3}  # WFDB physical units -> millivolts
MAX_NAMED_WINDOWS = 3  # windows named in a long record's quality summary


# ----------------------------------------------------------------------------------------------------------------------
# Polyphase resampling (numpy re-implementation of scipy.signal.resample_poly with its default Kaiser(5.0) filter)


def _lowpass_filter(up: int, down: int) -> np.ndarray:
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = np.arange(2 * half_len + 1) - half_len
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * taps) * np.kaiser(2 * half_len + 1, 5.0)
    return h / h.sum() * up


def resample_poly(signal: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample (C, T) by up/down along time: zero-stuff by `up`, low-pass FIR, keep every `down`-th sample.

    Each output sample only touches about len(filter)/up inputs, so we gather exactly those (polyphase) instead of
    convolving the zero-stuffed signal: cheap even for awkward ratios such as 257 -> 500 Hz.
    """
    if up == down:
        return signal
    h = _lowpass_filter(up, down)
    half_len = (len(h) - 1) // 2
    length = signal.shape[-1]
    out_len = -(-length * up // down)
    pre_pad = down - half_len % down
    h = np.concatenate([np.zeros(pre_pad), h])
    first = (half_len + pre_pad) // down  # output index of the first sample aligned with input sample 0
    taps_per_phase = -(-len(h) // up)
    h = np.concatenate([h, np.zeros(taps_per_phase * up - len(h))])
    out = np.empty((signal.shape[0], out_len))
    for start in range(0, out_len, RESAMPLE_BLOCK):
        t = (np.arange(start, min(start + RESAMPLE_BLOCK, out_len)) + first) * down  # positions on the up-sampled grid
        newest_input = t // up  # (block,)
        phase = t - newest_input * up  # (block,)
        inputs = newest_input[:, None] - np.arange(taps_per_phase)[None, :]  # (block, J)
        weights = h[phase[:, None] + up * np.arange(taps_per_phase)[None, :]]  # (block, J)
        valid = (inputs >= 0) & (inputs < length)
        gathered = signal[:, np.clip(inputs, 0, length - 1)] * valid  # (C, block, J)
        out[:, start:start + len(t)] = np.einsum("coj,oj->co", gathered, weights)
    return out


def resample_to_rate(signal: np.ndarray, rate: float, target_rate: float, keep_samples: int | None = None):
    """(C, T) at `rate` Hz -> (C, T * target_rate / rate) by `resample_poly`; a no-op at the target rate.

    `keep_samples`: only that many output samples are needed, so input beyond them (plus the filter's reach) is
    dropped first.
    """
    up, down = resampling_ratio(rate, target_rate)
    if keep_samples is not None:
        signal = signal[:, : input_samples_needed(keep_samples, rate, target_rate)]
    return resample_poly(signal, up, down)


def resampling_ratio(rate: float, target_rate: float) -> tuple[int, int]:
    """(up, down) with up/down ~ target_rate/rate, down <= 10 000: exact for every integer rate up to 10 kHz; for an
    odd rate such as 1234.567 Hz the time scale is off by < 1e-6 while the filter, whose length grows with
    max(up, down), stays small (the exact 500000/1234567 would need 25 M taps)."""
    ratio = Fraction(float(target_rate) / float(rate)).limit_denominator(MAX_RATIO_DENOMINATOR)
    return ratio.numerator, ratio.denominator


def input_samples_needed(keep_samples: int, rate: float, target_rate: float) -> int:
    """Input samples that the first `keep_samples` resampled samples depend on (the filter reaches 10 * max(up, down)
    up-sampled steps ahead)."""
    up, down = resampling_ratio(rate, target_rate)
    if up == down:  # no filter: exactly the window
        return keep_samples
    return int(np.ceil(keep_samples * down / up)) + 10 * max(up, down) // up + 1


def interpolate_non_finite(signal: np.ndarray) -> np.ndarray:
    """Linear interpolation over the NaN/Inf samples of each lead; every lead needs at least one finite sample."""
    finite = np.isfinite(signal)
    if finite.all():
        return signal
    repaired = signal.copy()
    time = np.arange(signal.shape[1])
    for lead in np.flatnonzero(~finite.all(axis=1)):
        good = finite[lead]
        repaired[lead, ~good] = np.interp(time[~good], time[good], signal[lead, good])
    return repaired


def crop_or_pad(signal: np.ndarray, length: int, anchor: str = "start", pad_value: float = 0.0) -> np.ndarray:
    """(C, T) -> (C, length): the first `length` samples (`anchor="center"`: the middle ones), or padded at the end."""
    samples = signal.shape[-1]
    if samples >= length:
        start = (samples - length) // 2 if anchor == "center" else 0
        return signal[:, start : start + length]
    return np.pad(signal, ((0, 0), (0, length - samples)), constant_values=pad_value)


# ----------------------------------------------------------------------------------------------------------------------
# Lead names


def lead_key(name: str) -> str:
    """Case- and space-insensitive lead name, aliases resolved: "avf" -> "AVF", "DII" -> "II"."""
    key = str(name).strip().upper().replace(" ", "")
    return LEAD_ALIASES.get(key, key)


def lead_rows(lead_names, target_leads) -> dict[int, int]:
    """{row in target_leads: row in lead_names} for the target leads present (first occurrence wins)."""
    rows = {}
    for row, name in enumerate(lead_names):
        rows.setdefault(lead_key(name), row)
    return {target: rows[lead_key(name)] for target, name in enumerate(target_leads) if lead_key(name) in rows}


def reorder_leads(signal: np.ndarray, lead_names, target_leads) -> np.ndarray:
    """(C, T) with `lead_names` -> (len(target_leads), T) in `target_leads` order.

    Missing limb leads are derived from I and II when both are present (Einthoven/Goldberger: III = II - I,
    aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2); any other missing lead is zero-filled with a warning.
    """
    out, derived, zero_filled = _reordered(signal, lead_names, target_leads)
    if derived:
        logger.info(f"Derived missing limb lead(s) {derived} from leads I and II.")
    if zero_filled:
        logger.warning(f"Lead(s) {zero_filled} are missing and were filled with zeros.")
    return out


def _reordered(signal, lead_names, target_leads):
    """`reorder_leads` without its log lines (the windows of a long record would repeat them thousands of times):
    -> (reordered signal, derived lead names, zero-filled lead names)."""
    keys = [lead_key(name) for name in lead_names]
    if len(set(keys)) != len(keys):
        raise ValueError(f"lead_names has duplicates: {list(lead_names)}")
    target_keys = [lead_key(name) for name in target_leads]
    unknown = [name for name, key in zip(lead_names, keys) if key not in target_keys]
    if unknown:
        raise ValueError(f"Unknown lead name(s) {unknown}; expected names among {list(target_leads)}.")
    index = {key: i for i, key in enumerate(keys)}
    present = lead_rows(lead_names, target_leads)
    out = np.zeros((len(target_leads), signal.shape[-1]), dtype=signal.dtype)
    derived, zero_filled = [], []
    for row, (name, key) in enumerate(zip(target_leads, target_keys)):
        if row in present:
            out[row] = signal[present[row]]
        elif "I" in index and "II" in index and key in _LIMB_FORMULAS:
            out[row] = _LIMB_FORMULAS[key](signal[index["I"]], signal[index["II"]])
            derived.append(name)
        else:
            zero_filled.append(name)
    return out, derived, zero_filled


_LIMB_FORMULAS = {
    "III": lambda lead_i, lead_ii: lead_ii - lead_i,
    "AVR": lambda lead_i, lead_ii: -(lead_i + lead_ii) / 2,
    "AVL": lambda lead_i, lead_ii: lead_i - lead_ii / 2,
    "AVF": lambda lead_i, lead_ii: lead_ii - lead_i / 2,
}


# ----------------------------------------------------------------------------------------------------------------------
# Reading inputs


def read_wfdb(path) -> tuple[np.ndarray, float, list[str]]:
    """A WFDB record (`.hea`, `.dat` or `.mat` path, or record name) -> ((C, T) millivolts, sampling rate, lead names).

    Physical units other than mV (uV, V) are converted; NaN marks samples the record flags as invalid. A header
    without a readable sampling frequency is an error (WFDB would assume 250 Hz)."""
    try:
        import wfdb
    except ImportError as error:
        raise ImportError("Reading WFDB records needs the `wfdb` package: pip install wfdb") from error
    record = wfdb_record_name(path)
    if not os.path.exists(record + ".hea"):
        raise FileNotFoundError(f"WFDB header not found: {record}.hea")
    try:
        check_wfdb_header_frequency(record + ".hea")
        signal, fields = wfdb.rdsamp(record)
    except Exception as error:  # wfdb raises many types for corrupt files
        raise ValueError(f"Could not read WFDB record {record}: {error}") from error
    scale = np.array([UNIT_TO_MV.get((unit or "mV").lower(), 1.0) for unit in fields["units"]])  # (C,)
    return np.asarray(signal, dtype=np.float64).T * scale[:, None], float(fields["fs"]), list(fields["sig_name"])


class WfdbRecord:
    """A WFDB record read on demand: `read(start, stop)` -> (C, stop - start) float64 millivolts, as `read_wfdb` gives
    them (NaN where the record marks a sample invalid), reading only those samples from the file.

    The header is parsed and the samples decoded by `ecg_wfdb`, the dataset builders' reader: a record in one data file
    in formats 16, 32, 80 or 212 is read with `np.fromfile(offset=, count=)` (for 212, the 3-byte pairs enclosing the
    span) and the header's gain and baseline; any other layout (several files, other formats, skew) through wfdb's own
    `rdsamp(sampfrom=, sampto=)`. Either way, a span costs only its own memory: a 24 h Holter record (1 GB on disk,
    4 GB as float64) is never loaded whole.
    """

    ndim = 2

    def __init__(self, path):
        self.name = wfdb_record_name(path)
        if not os.path.exists(self.name + ".hea"):
            raise FileNotFoundError(f"WFDB header not found: {self.name}.hea")
        try:
            check_wfdb_header_frequency(self.name + ".hea")
            self._layout = read_header(self.name)
            if self._layout is None:
                sampling_rate, lead_names, units, length = self._header_from_wfdb()
            else:
                sampling_rate, lead_names, units = self._layout.fs, self._layout.names, self._layout.units
                self._data_file = signal_file(self.name, self._layout)
                length = frames_in_file(self._data_file, self._layout)  # FileNotFoundError without a data file
        except ImportError:
            raise
        except Exception as error:  # wfdb raises many types for corrupt files
            raise ValueError(f"Could not read WFDB record {self.name}: {error}") from error
        if self._layout is not None and self._layout.n_samp is not None:
            if length < self._layout.n_samp:
                raise ValueError(f"Could not read WFDB record {self.name}: its data file holds {length} samples per "
                                 f"signal, the header declares {self._layout.n_samp} (a truncated file?).")
            length = self._layout.n_samp
        self.sampling_rate = float(sampling_rate)
        self.lead_names = list(lead_names)
        self.shape = (len(self.lead_names), int(length))
        self.size = self.shape[0] * self.shape[1]
        self._to_mv = np.array([UNIT_TO_MV.get((unit or "mV").lower(), 1.0) for unit in units])  # (C,)

    def _header_from_wfdb(self):
        """(rate, lead names, units, length) of a record `ecg_wfdb` leaves to wfdb, after wfdb's own checks."""
        wfdb = import_wfdb()
        header = wfdb.rdheader(self.name)
        if len(header.sig_name or []) != header.n_sig:
            raise ValueError(f"the header declares {header.n_sig} signal(s) and describes "
                             f"{len(header.sig_name or [])}")
        wfdb.rdsamp(self.name, sampfrom=0, sampto=1)  # wfdb's own checks of the header against the data file
        if header.sig_len is None:
            raise ValueError("the header gives no signal length (the 4th field of its record line)")
        return header.fs, header.sig_name, header.units, header.sig_len

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of every lead, (C, stop - start) float64 millivolts."""
        stop = min(stop, self.shape[1])
        if self._layout is None:
            signal, _ = import_wfdb().rdsamp(self.name, sampfrom=start, sampto=stop)
            return np.asarray(signal, dtype=np.float64).T * self._to_mv[:, None]
        digital = read_digital(self._data_file, self._layout, start, stop)  # (span, C)
        return to_physical(digital, self._layout, np.float64) * self._to_mv[:, None]


def read_span(signal, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of every lead of a leads-first record as float64: a slice of an array (only that part is
    converted) or read from the file of a `WfdbRecord`."""
    if isinstance(signal, WfdbRecord):
        return signal.read(start, stop)
    return np.asarray(signal[:, start:stop], dtype=np.float64)


class TamerFeatureExtractor(SequenceFeatureExtractor):
    r"""Turns raw ECGs into the model's `input_values` (B, 12, 5000).

    Args:
        feature_size (`int`, defaults to 12): number of leads.
        sampling_rate (`int`, defaults to 500): the model's rate; inputs are resampled to it (polyphase).
        num_samples (`int`, defaults to 5000): the model's window. `__call__` crops a record to its first window or
            zero-pads it at the end; `windows` cuts a longer record into consecutive windows.
        lead_names (`list[str]`): the model's lead order (default I, II, III, aVR, aVL, aVF, V1-V6).
        normalization (`str`, defaults to `"minmax"`): `"minmax"` per record over all leads to [0, 1] (MERL, TAMER),
            `"zscore"` per lead, or `"none"`.
        nan_policy (`str`, defaults to `"interpolate"`): NaN/Inf samples are linearly interpolated from their
            neighbours in the lead (`"interpolate"`), set to 0 (`"zero"`) or rejected (`"raise"`). A lead with no finite
            sample is always rejected, unless `"zero"`. Repaired samples are reported as a quality issue.
        outlier_policy (`str`, defaults to `"clip"`): samples more than 20 times the record's 99th-percentile deviation
            from their lead's median (a corrupt 1e30 sample, a spike from a loose electrode) are flagged and clipped to
            that limit (`"clip"`), linearly interpolated from their neighbours (`"interpolate"`) or left as they are
            (`"keep"`). Without this, one such sample squashes the rest of the record to a flat line under min-max
            scaling.
        stft_n_fft, stft_win_length, stft_hop_length, spectrogram_log: as in `TamerConfig`, for `return_spectrogram`.

    Which axis holds the leads: `channels_first=True/False` when given; otherwise the axis whose size equals the number
    of leads (`len(lead_names)` when given, else 12); when both or neither axis match, the shorter axis. A DataFrame
    has one column per lead, and its column names are the lead names.

    Input checks (`ecg_validation`): errors name the record (`ECG #i`, or the file) and the problem; quality issues
    (flat, all-zero, clipped, amplitude implausible for mV, outlying samples, NaN/Inf repaired, record shorter or longer
    than the window) are `ECGQualityWarning`s, listed per record with `return_quality=True` and raised with
    `strict=True`.

    Long records: `__call__` keeps the first window (with a warning); `windows(record)` yields every consecutive window,
    each prepared exactly as `__call__` prepares a record starting there, read one at a time (see `ECGWindows`).
    """

    model_input_names = ["input_values"]

    def __init__(
        self,
        feature_size: int = 12,
        sampling_rate: int = 500,
        num_samples: int = 5000,
        padding_value: float = 0.0,
        lead_names: list[str] | None = None,
        normalization: str = "minmax",
        nan_policy: str = "interpolate",
        outlier_policy: str = "clip",
        stft_n_fft: int = 125,
        stft_win_length: int = 125,
        stft_hop_length: int = 63,
        spectrogram_log: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("return_attention_mask", False)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        if outlier_policy not in OUTLIER_POLICIES:
            raise ValueError(f"outlier_policy must be one of {OUTLIER_POLICIES}, got {outlier_policy!r}")
        self.num_samples = num_samples
        self.lead_names = list(lead_names) if lead_names is not None else list(CANONICAL_LEADS)
        self.normalization = normalization
        self.nan_policy = nan_policy
        self.outlier_policy = outlier_policy
        self.stft_n_fft = stft_n_fft
        self.stft_win_length = stft_win_length
        self.stft_hop_length = stft_hop_length
        self.spectrogram_log = spectrogram_log

    # ------------------------------------------------------------------ public entry point
    def __call__(
        self,
        ecg,
        sampling_rate: float | None = None,
        lead_names: list[str] | None = None,
        channels_first: bool | None = None,
        return_tensors: str | None = None,
        return_spectrogram: bool = False,
        strict: bool = False,
        return_quality: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """Prepare one record or a batch.

        Args:
            ecg: one record as a 2-D array/tensor/nested list, a batch as a 3-D array or a list of 2-D records (their
                lengths may differ), a pandas DataFrame (time × leads, columns named by lead), a WFDB record path
                (`.hea`) or a list of paths, or a dict (or list of dicts) with keys `signal`, `sampling_rate` and
                optionally `lead_names`.
            sampling_rate: Hz of the given arrays. Required for arrays; WFDB headers and dicts carry their own (a
                different `sampling_rate=` is an error).
            lead_names: the leads of the given arrays, in their order; they are reordered to the model's order.
            channels_first: layout of the given arrays; decided from the shape when omitted (see class docstring).
            return_tensors: `"pt"` or `"np"`.
            return_spectrogram: also return `spectrogram` (B, 12, 63, 81), exactly what the model computes.
            strict: raise a `ValueError` for a quality issue instead of warning.
            return_quality: also return `quality`, one `{"ok": bool, "issues": [str, ...]}` per record.
        """
        check_keywords(kwargs, CALL_KEYWORDS, f"{type(self).__name__}.__call__")
        batch = self._uniform_batch(ecg, sampling_rate, lead_names, channels_first)
        if batch is not None:  # training batches, stacks of 10 s records: screened at once
            values, reports = self._prepare_batch(batch, strict)
        else:
            records = self._split_records(ecg, sampling_rate, lead_names)
            if not records:
                raise ValueError("No ECG given: the list of records is empty.")
            prepared = [self._prepare_record(signal, rate, names, channels_first, name or f"ECG #{index}", strict)
                        for index, (signal, rate, names, name) in enumerate(records)]
            values = np.stack([values for values, _ in prepared]).astype(np.float32)  # (B, 12, 5000)
            reports = [report for _, report in prepared]
        data = {"input_values": values}
        if return_spectrogram:
            data["spectrogram"] = self.spectrogram(values).numpy()
        features = BatchFeature(data=data, tensor_type=return_tensors)
        if return_quality:
            features["quality"] = [report.as_dict() for report in reports]
        return features

    def windows(self, ecg, sampling_rate: float | None = None, lead_names: list[str] | None = None,
                channels_first: bool | None = None, strict: bool = False) -> "ECGWindows":
        """One record -> its consecutive windows of `num_samples` at the model's rate (10 s), prepared one at a time.

        ```python
        >>> windows = feature_extractor.windows("holter.hea")  # reads the header; samples are read window by window
        >>> len(windows), windows.start_seconds[:3]
        (8640, [0.0, 10.0, 20.0])
        >>> for window in windows:  # window.input_values: (12, 5000) float32, window.quality, window.start_s
        ...     ...
        ```

        Window k starts at k * 10 s and is prepared exactly as `__call__` prepares a record that starts there (so a
        window of a 500 Hz record equals its 10 s slice prepared alone). The last partial window follows
        `ecg_validation.window_count`: half a window or more is zero-padded, less is left out, each with an
        `ECGQualityWarning`. A record up to 10 s is one window, with `__call__`'s checks and warnings. In a record of
        several windows, each window's quality issues stay in its `quality` and one warning sums them up for the
        record (`ECGWindows.quality`), so a day-long recording does not print thousands of warnings.

        Args: as `__call__`, for one record (an array, DataFrame, WFDB path or dict). An array is sliced, never copied
        whole; a WFDB path is read from its file one window at a time (`WfdbRecord`).
        """
        records = self._split_records(ecg, sampling_rate, lead_names)
        if len(records) != 1:
            raise ValueError(f"Got a batch of {len(records)} ECGs as one input; windows() takes one ECG: pass a "
                             "list of ECGs to the pipeline, or call windows() once per ECG.")
        signal, rate, names, record = records[0]
        record = record or "ECG #0"
        report = QualityReport(record, strict)
        try:
            signal, rate, lead_names, names = self._check_record(signal, rate, names, channels_first)
            num_windows = window_count(signal.shape[1], rate, self.num_samples / self.sampling_rate, report)
        except ValueError as error:
            raise ValueError(f"{record}: {error}") from None
        return ECGWindows(self, signal, rate, lead_names, names, report, num_windows)

    def spectrogram(self, input_values) -> torch.Tensor:
        """(B, 12, T) prepared ECGs -> (B, 12, 63, 81) STFT magnitude (the model's own function)."""
        values = torch.as_tensor(np.asarray(input_values, dtype=np.float32))
        window = torch.hann_window(self.stft_win_length)
        return stft_magnitude(values, window, self.stft_n_fft, self.stft_hop_length, self.spectrogram_log)

    # ------------------------------------------------------------------ input parsing
    def _split_records(self, ecg, sampling_rate, lead_names):
        """-> list of (raw array, sampling rate, lead names or None, record name or None)."""
        if isinstance(ecg, (str, os.PathLike)):
            return [(*self._read_path(ecg, sampling_rate), os.fspath(ecg))]
        if isinstance(ecg, dict):
            return [(*dict_record(ecg, sampling_rate, lead_names), None)]
        if is_dataframe(ecg):
            signal, names = dataframe_record(ecg, lead_names)
            return [(signal, sampling_rate, names, None)]
        if isinstance(ecg, (list, tuple)) and len(ecg) == 0:
            return []
        if isinstance(ecg, (list, tuple)) and all(isinstance(item, (str, os.PathLike, dict)) or is_dataframe(item)
                                                  for item in ecg):
            return [item for entry in ecg for item in self._split_records(entry, sampling_rate, lead_names)]
        if isinstance(ecg, (list, tuple)) and all(_is_array_like_2d(item) for item in ecg):
            return [(as_numeric_array(item), sampling_rate, lead_names, None) for item in ecg]
        array = as_numeric_array(ecg)
        if array.ndim == 2:
            return [(array, sampling_rate, lead_names, None)]
        if array.ndim == 3:
            return [(record, sampling_rate, lead_names, None) for record in array]
        raise ValueError(
            f"Expected one ECG with 2 dimensions (leads, time) or a batch with 3 dimensions, got {array.ndim} "
            f"dimension(s) with shape {array.shape}."
        )

    def _read_path(self, path, sampling_rate):
        record = WfdbRecord(path)
        if sampling_rate is not None and float(sampling_rate) != record.sampling_rate:
            raise ValueError(f"sampling_rate={sampling_rate} contradicts the {record.sampling_rate} Hz in the header "
                             f"of {path}.")
        return record, record.sampling_rate, record.lead_names

    # ------------------------------------------------------------------ a uniform batch
    def _uniform_batch(self, ecg, sampling_rate, lead_names, channels_first) -> np.ndarray | None:
        """`ecg` as a (B, 12, num_samples) array when it is one already, at the model's rate and in its lead order
        (nothing to reorder, resample, crop or pad); else None."""
        if lead_names is not None or channels_first is False:
            return None
        if not (isinstance(ecg, np.ndarray) or torch.is_tensor(ecg)):
            return None
        if ecg.ndim != 3 or tuple(ecg.shape[1:]) != (self.feature_size, self.num_samples) or len(ecg) == 0:
            return None
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, float, np.number)):
            return None
        if float(sampling_rate) != float(self.sampling_rate):
            return None
        return as_numeric_array(ecg)

    def _prepare_batch(self, batch: np.ndarray, strict: bool) -> tuple[np.ndarray, list[QualityReport]]:
        """`_prepare_record` of every record of a uniform batch, vectorised: one screen of the whole batch
        (`screen_batch`), then the per-record steps only for the records with something to repair (NaN/Inf, outlying
        samples) or possibly to flag (flat, clipped, implausible amplitude). The same values and warnings as record by
        record (tested), without its per-record passes."""
        signal = np.asarray(batch, dtype=np.float64)
        low, high = signal.min(axis=2), signal.max(axis=2)  # (B, 12): for the screen and for min-max scaling
        repair, suspect = screen_batch(signal, low, high)
        bounds = (low.min(axis=1)[:, None, None], high.max(axis=1)[:, None, None])  # each record's, exactly
        values = self._normalize(signal, *bounds).astype(np.float32)
        reports = []
        for index in range(len(signal)):
            name = f"ECG #{index}"
            if repair[index]:
                values[index], report = self._prepare_record(batch[index], self.sampling_rate, None, True, name, strict)
            else:
                report = QualityReport(name, strict)
                if suspect[index]:
                    try:
                        check_degenerate(signal[index], self.lead_names, report)
                    except ValueError as error:
                        raise ValueError(f"{name}: {error}") from None
            reports.append(report)
        return values, reports

    # ------------------------------------------------------------------ one record
    def _prepare_record(self, signal, sampling_rate, lead_names, channels_first, record, strict):
        """-> ((12, 5000) prepared values of the record's first window, QualityReport). Errors are `ValueError`s
        prefixed with the record's name."""
        report = QualityReport(record, strict)
        try:
            signal, rate, lead_names, names = self._check_record(signal, sampling_rate, lead_names, channels_first)
            check_duration(signal.shape[1], rate, self.num_samples / self.sampling_rate, report)
            return self._prepare_window(signal, 0, rate, lead_names, names, report), report
        except ValueError as error:
            raise ValueError(f"{record}: {error}") from None

    def _check_record(self, signal, sampling_rate, lead_names, channels_first):
        """-> (leads-first signal, rate, the given lead names checked (or None), the names of its rows)."""
        rate = check_sampling_rate(sampling_rate, self.sampling_rate)
        if lead_names is not None:
            lead_names = check_lead_names(lead_names)
        signal = self._leads_first(signal, lead_names, channels_first)
        if lead_names is not None:
            lead_names = check_lead_names(lead_names, signal.shape[0])
        elif signal.shape[0] != self.feature_size:
            raise ValueError(
                f"got {signal.shape[0]} leads but the model expects {self.feature_size}; pass `lead_names` to say "
                "which leads these are (missing leads are derived or zero-filled)."
            )
        return signal, rate, lead_names, lead_names or self.lead_names

    def _prepare_window(self, signal, start, rate, lead_names, names, report) -> np.ndarray:
        """The window starting at input sample `start` -> (12, 5000). Only the samples it uses (its 10 s and the
        resampling filter's reach) are read and converted: a 24 h record never becomes a 4 GB float64 copy."""
        signal = read_span(signal, start, start + input_samples_needed(self.num_samples, rate, self.sampling_rate))
        signal = self._repair_non_finite(signal, names, report)
        signal = repair_outliers(signal, names, self.outlier_policy, report)
        check_degenerate(signal, names, report)
        if lead_names is not None:
            signal = self._reorder_leads(signal, lead_names, report)
        signal = self._resample(signal, rate)
        signal = self._crop_or_pad(signal)
        values = self._normalize(signal)
        if not np.isfinite(values.astype(np.float32)).all():
            raise ValueError("the prepared values are not finite (amplitudes beyond float32's range); rescale the "
                             "record, or keep outlier_policy='clip' if only a few samples are corrupt.")
        return values

    def _reorder_leads(self, signal, lead_names, report):
        """Model lead order; a lead that is neither given nor derivable from I and II is zero-filled and flagged."""
        signal, _, zero_filled = _reordered(signal, lead_names, self.lead_names)
        if zero_filled:
            report.flag(f"lead(s) {zero_filled} are missing and were filled with zeros.")
        return signal

    def _leads_first(self, signal, lead_names, channels_first):
        if isinstance(signal, WfdbRecord):  # a file is read leads-first
            return signal
        if signal.ndim != 2:
            raise ValueError(f"one ECG must have 2 dimensions (leads, time), got shape {signal.shape}.")
        if signal.size == 0:
            raise ValueError(f"the ECG is empty (shape {signal.shape}).")
        if channels_first is None:
            num_leads = len(lead_names) if lead_names is not None else self.feature_size
            rows_match, cols_match = signal.shape[0] == num_leads, signal.shape[1] == num_leads
            channels_first = rows_match if rows_match != cols_match else signal.shape[0] <= signal.shape[1]
        return signal if channels_first else signal.T

    def _repair_non_finite(self, signal, lead_names, report):
        finite = np.isfinite(signal)
        if finite.all():
            return signal
        if self.nan_policy == "raise":
            raise ValueError(f"the ECG has {int((~finite).sum())} NaN/Inf sample(s) and nan_policy='raise'.")
        dead = [name for name, lead_finite in zip(lead_names, finite) if not lead_finite.any()]
        if dead and self.nan_policy != "zero":
            raise ValueError(
                f"lead(s) {dead} contain no finite value (all NaN/Inf); drop the record or use nan_policy='zero'."
            )
        leads = [name for name, lead_finite in zip(lead_names, finite) if not lead_finite.all()]
        action = "set to 0" if self.nan_policy == "zero" else "interpolated from their neighbours"
        report.flag(f"{int((~finite).sum())} NaN/Inf sample(s) in lead(s) {leads} were {action}.")
        if self.nan_policy == "zero":
            return np.where(finite, signal, 0.0)
        return interpolate_non_finite(signal)

    def _resample(self, signal, rate):
        return resample_to_rate(signal, rate, self.sampling_rate, keep_samples=self.num_samples)

    def _crop_or_pad(self, signal):
        return crop_or_pad(signal, self.num_samples, pad_value=self.padding_value)

    def _normalize(self, signal, low=None, high=None):
        """(..., 12, T): one record, or a batch of them; `low` / `high`: each record's minimum and maximum, when
        known (broadcastable to `signal`)."""
        if self.normalization == "minmax":  # per record, over all its leads
            low = signal.min(axis=(-2, -1), keepdims=True) if low is None else low
            high = signal.max(axis=(-2, -1), keepdims=True) if high is None else high
            return (signal - low) / (high - low + EPSILON)
        if self.normalization == "zscore":
            return (signal - signal.mean(axis=-1, keepdims=True)) / (signal.std(axis=-1, keepdims=True) + EPSILON)
        return signal


CALL_KEYWORDS = ("ecg", "sampling_rate", "lead_names", "channels_first", "return_tensors", "return_spectrogram",
                 "strict", "return_quality")


@dataclass
class ECGWindow:
    """One prepared window of a record: where it starts (seconds from the record's start), its `input_values`
    (12, 5000) float32 and its own `quality` (`{"ok": bool, "issues": [str, ...]}`)."""

    start_s: float
    input_values: np.ndarray
    quality: dict


class ECGWindows:
    """The consecutive windows of one record (`TamerFeatureExtractor.windows`), prepared one at a time as they are
    iterated: at any moment only the current window's samples are in memory.

    `len(windows)` and `start_seconds` are known before any sample is read; `quality` is the record's: its length
    (a padded or left-out tail) and, once iterated, a summary of its windows' issues (flagged before the last window is
    yielded, so the record's quality is complete when the last window arrives).
    """

    def __init__(self, extractor, signal, rate, lead_names, names, report, num_windows):
        self.extractor = extractor
        self.signal, self.rate, self.lead_names, self.names = signal, rate, lead_names, names
        self.report = report
        window = extractor.num_samples * rate / extractor.sampling_rate  # input samples per window (may be fractional)
        self.starts = [round(index * window) for index in range(num_windows)]  # input samples
        self._summarised = False

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def start_seconds(self) -> list[float]:
        return [start / self.rate for start in self.starts]

    @property
    def quality(self) -> dict:
        return self.report.as_dict()

    def __iter__(self):
        flagged = []  # (start in seconds, issues) of the windows with quality issues
        last = len(self) - 1
        for index, start in enumerate(self.starts):
            start_s = start / self.rate
            # one window: its issues are the record's, warned as `__call__` warns them
            report = self.report if last == 0 else QualityReport(self.report.record, self.report.strict, warn=False)
            try:
                values = self.extractor._prepare_window(self.signal, start, self.rate, self.lead_names, self.names,
                                                        report)
            except ValueError as error:
                where = "" if last == 0 else f"window at {start_s:g} s: "
                raise ValueError(f"{self.report.record}: {where}{error}") from None
            if report is not self.report and report.issues:
                flagged.append((start_s, report.issues))
            if index == last and flagged and not self._summarised:
                self.report.flag(_window_issues_summary(flagged, len(self)))
                self._summarised = True  # a second pass over the windows does not add it again
            yield ECGWindow(start_s, values.astype(np.float32), report.as_dict())


def _window_issues_summary(flagged, num_windows) -> str:
    named = "; ".join(f"at {start_s:g} s: {' '.join(issues)}" for start_s, issues in flagged[:MAX_NAMED_WINDOWS])
    more = f"; and {len(flagged) - MAX_NAMED_WINDOWS} more" if len(flagged) > MAX_NAMED_WINDOWS else ""
    return f"{len(flagged)} of its {num_windows} windows have quality issues ({named}{more})."


def _is_array_like_2d(item) -> bool:
    return (torch.is_tensor(item) or isinstance(item, np.ndarray)) and item.ndim == 2 or (
        isinstance(item, (list, tuple)) and len(item) > 0 and isinstance(item[0], (list, tuple, np.ndarray))
    )


__all__ = ["TamerFeatureExtractor", "ECGWindow", "ECGWindows", "WfdbRecord", "crop_or_pad", "input_samples_needed",
           "resampling_ratio", "interpolate_non_finite", "lead_key", "lead_rows", "read_span", "read_wfdb",
           "reorder_leads", "resample_poly", "resample_to_rate"]

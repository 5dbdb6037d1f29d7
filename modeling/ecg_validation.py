"""Checks on raw ECG input, shared by the feature extractor (and so by every processor) and the zero-shot pipeline.

Two kinds of findings:
- **errors**: input that cannot be an ECG or contradicts itself (wrong shape or dtype, a `lead_names` list of the wrong
  length, an implausible sampling rate or one that contradicts the record's own, a misspelt keyword, a record shorter
  than 1 s). A `ValueError` (`TypeError` for keywords) that names the record and the problem.
- **quality issues**: a record that can be prepared but whose score deserves doubt (flat or all-zero, clipped, an
  amplitude implausible for millivolts, samples far outside the record's range, NaN/Inf repaired, padded to the
  model's window, a long record's tail padded or left out, windows of a long record with such issues). Each one is an
  `ECGQualityWarning` naming the record and the problem and is listed in the record's `quality`
  (`{"ok": bool, "issues": [str, ...]}`); `strict=True` turns it into a `ValueError`.

Flat, depending only on numpy and torch: copied next to every saved checkpoint whose files import it.
"""

import difflib
import os
import re
import warnings

import numpy as np
import torch

MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 50, 20_000  # Hz; outside this a "sampling rate" is almost surely a mistake
MIN_DURATION_S = 1.0  # shorter records hold at most one beat
WINDOW_TOLERANCE = 0.02  # a record within 2 % of the model's window is neither "short" nor "cut"
MIN_SPAN_MV, MAX_SPAN_MV = 0.05, 30.0  # record peak-to-peak outside this is implausible for millivolts
OUTLIER_FACTOR = 20.0  # a sample this many times the record's 99th-percentile deviation from its lead's median
OUTLIER_QUANTILE = 99.0
CLIPPED_FRACTION = 0.01  # a lead with >= 1 % of its samples exactly at its maximum (or minimum) is saturated
OUTLIER_POLICIES = ("clip", "interpolate", "keep")
DICT_KEYS = ("signal", "ecg", "sampling_rate", "lead_names")
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
_WFDB_FREQUENCY = re.compile(r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?([/(]|$)")  # FS[/COUNTER_FREQ[(BASE_COUNTER)]]


class ECGQualityWarning(UserWarning):
    """A record that can be scored, but whose score deserves doubt; the message names the record and the problem."""


class QualityReport:
    """The quality issues of one record: each is warned about (or raised, with `strict=True`) and kept for the
    record's `quality` entry."""

    def __init__(self, record: str, strict: bool = False, warn: bool = True):
        self.record = record
        self.strict = strict
        self.warn = warn  # False for the windows of a long record: their issues are summed up in one warning
        self.issues: list[str] = []

    def flag(self, problem: str) -> None:
        if self.strict:
            raise ValueError(f"{problem} (strict=True turns quality warnings into errors)")
        self.issues.append(problem)
        if self.warn:
            warnings.warn(f"{self.record}: {problem}", ECGQualityWarning, stacklevel=2)

    def as_dict(self) -> dict:
        return {"ok": not self.issues, "issues": list(self.issues)}


# ----------------------------------------------------------------------------------------------------------------------
# Errors: what the input is


def check_keywords(kwargs: dict, allowed, where: str) -> None:
    """Unknown keywords are an error (a misspelt `sampling_rte=` must not be ignored), with the closest known name."""
    if not kwargs:
        return
    hints = []
    for name in sorted(kwargs):
        close = difflib.get_close_matches(name, list(allowed), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"{where} got unexpected keyword argument(s) {', '.join(hints)}; known: {sorted(allowed)}.")


def as_numeric_array(values) -> np.ndarray:
    """A real-valued array (the dtype is kept; the caller converts only the part it uses). Booleans, complex numbers,
    strings and objects are errors: `np.asarray` would accept them and the model would score nonsense."""
    if torch.is_tensor(values):
        if values.is_complex() or values.dtype == torch.bool:
            raise ValueError(f"ECG values must be real numbers, got a tensor of dtype {values.dtype}.")
        values = values.detach().cpu()
        values = (values.float() if values.dtype == torch.bfloat16 else values).numpy()
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"ECG data could not be turned into an array: {error}") from None
    if array.dtype == bool:
        raise ValueError("ECG values must be numbers, got a boolean array (a mask, not a signal?).")
    if np.iscomplexobj(array):
        raise ValueError("ECG values must be real numbers, got complex values.")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"ECG values must be numeric, got an array of dtype {array.dtype}.")
    return array


def is_dataframe(value) -> bool:
    """A pandas (or pandas-like) DataFrame, recognised without importing pandas."""
    return hasattr(value, "columns") and hasattr(value, "to_numpy") and getattr(value, "ndim", None) == 2


def dataframe_record(frame, lead_names):
    """(time × leads) DataFrame -> ((leads, time) array, lead names). Named columns are the lead names, so shuffled
    columns still land on the right leads; `lead_names` given as well must agree with them."""
    columns = list(frame.columns)
    named = all(isinstance(column, str) for column in columns)
    if named and lead_names is not None and [str(n) for n in lead_names] != columns:
        raise ValueError(f"lead_names {list(lead_names)} contradict the DataFrame's columns {columns}.")
    names = columns if named else (list(lead_names) if lead_names is not None else None)
    return as_numeric_array(frame.to_numpy()).T, names


def dict_record(record: dict, sampling_rate, lead_names):
    """A dict ECG -> (signal, rate, lead names). Unknown keys, and a rate or lead list contradicting the call's, are
    errors: silently letting one win would score the record at the wrong rate or with the wrong leads."""
    unknown = {key: None for key in record if key not in DICT_KEYS}
    check_keywords(unknown, DICT_KEYS, "An ECG dict")
    signal = record.get("signal", record.get("ecg"))
    if signal is None:
        raise ValueError(f"An ECG dict needs a 'signal' entry, got keys {sorted(record)}.")
    rate = record.get("sampling_rate", sampling_rate)
    if sampling_rate is not None and "sampling_rate" in record and not _same_number(rate, sampling_rate):
        raise ValueError(f"sampling_rate={sampling_rate} contradicts the dict's own sampling_rate {rate}.")
    names = record.get("lead_names", lead_names)
    if lead_names is not None and "lead_names" in record and list(names) != list(lead_names):
        raise ValueError(f"lead_names={list(lead_names)} contradicts the dict's own lead_names {list(names)}.")
    if is_dataframe(signal):
        signal, names = dataframe_record(signal, names)
        return signal, rate, names
    return as_numeric_array(signal), rate, names


def _same_number(first, second) -> bool:
    try:
        return float(first) == float(second)
    except (TypeError, ValueError):
        return False


def wfdb_record_name(path) -> str:
    """The record name of a WFDB path: "X.hea", "X.dat", "X.mat" and "X" all name record "X" (whose header is X.hea)."""
    record = os.fspath(path)
    for suffix in WFDB_SUFFIXES:
        if record.endswith(suffix):
            return record[: -len(suffix)]
    return record


def check_wfdb_header_frequency(header_path: str) -> None:
    """The record line must give a sampling frequency: without a readable one, WFDB silently assumes 250 Hz."""
    with open(header_path, encoding="utf-8", errors="replace") as handle:
        record_line = next((line for line in handle if line.strip() and not line.lstrip().startswith("#")), "")
    fields = record_line.split()
    if len(fields) < 3 or not _WFDB_FREQUENCY.match(fields[2]):
        found = repr(fields[2]) if len(fields) >= 3 else "none"
        raise ValueError(f"the header {header_path} gives no readable sampling frequency (found {found}); WFDB would "
                         "silently assume 250 Hz. Fix the record line: NAME NUM_SIGNALS FREQUENCY NUM_SAMPLES.")


def check_sampling_rate(sampling_rate, model_rate) -> float:
    if sampling_rate is None:
        raise ValueError(
            "no sampling_rate given. Pass `sampling_rate=` (Hz) with array inputs so the ECG can be resampled to "
            f"{model_rate} Hz; WFDB files and dicts carry their own."
        )
    if isinstance(sampling_rate, bool):
        raise ValueError(f"sampling_rate must be a number of Hz, got {sampling_rate!r}.")
    try:
        rate = float(sampling_rate)
    except (TypeError, ValueError):
        raise ValueError(f"sampling_rate must be a number of Hz, got {sampling_rate!r}.") from None
    if not np.isfinite(rate) or not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        raise ValueError(
            f"sampling_rate={sampling_rate} Hz is outside the plausible range {MIN_SAMPLING_RATE}-{MAX_SAMPLING_RATE} Hz."
        )
    return rate


def check_lead_names(lead_names, num_rows: int | None = None) -> list[str]:
    """`lead_names` must be non-empty strings naming every row (`num_rows`, when known): a shorter or longer list
    would drop or misassign leads."""
    if isinstance(lead_names, str) or not hasattr(lead_names, "__len__"):
        raise ValueError(f"lead_names must be a list of lead names, got {lead_names!r}.")
    names = list(lead_names)
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise ValueError(f"lead_names must be non-empty strings, got {names!r}.")
    if num_rows is not None and len(names) != num_rows:
        raise ValueError(f"{len(names)} lead_names {names} for an ECG with {num_rows} leads; give one name per lead.")
    return names


def check_duration(num_samples: int, rate: float, window_s: float, report: QualityReport) -> None:
    """What `TamerFeatureExtractor.__call__` prepares: one window. Under 1 s is an error; shorter than the model's
    window is padded, longer is cut to its first window, each flagged (`window_count` covers a long record)."""
    seconds = num_samples / rate
    if seconds < MIN_DURATION_S:
        raise ValueError(f"the record lasts {seconds:.3f} s; at least {MIN_DURATION_S} s is needed.")
    if seconds < window_s * (1 - WINDOW_TOLERANCE):
        report.flag(f"the record lasts {seconds:.1f} s, shorter than the model's {window_s:g} s window; it was "
                    "zero-padded at the end.")
    elif seconds > window_s * (1 + WINDOW_TOLERANCE):
        report.flag(f"the record lasts {seconds:.1f} s; only its first {window_s:g} s are prepared here "
                    f"(`TamerFeatureExtractor.windows` and the zero-shot pipeline cover every {window_s:g} s window).")


def window_count(num_samples: int, rate: float, window_s: float, report: QualityReport) -> int:
    """How many consecutive windows of `window_s` seconds cover a record, from its start.

    A record up to the window (+2 %) is one window, padded and flagged when shorter (as `check_duration`). A longer
    record is cut into whole windows; what is left after the last one (the tail) is
    - at least half a window: one more window, zero-padded at the end, flagged (a record that short alone would be);
    - between 2 % and half a window: left out, flagged (half a window of zeros would weigh as much as the signal);
    - under 2 % of a window: left out silently (as a 10.1 s record is cut to 10 s).
    """
    seconds = num_samples / rate
    if seconds <= window_s * (1 + WINDOW_TOLERANCE):
        check_duration(num_samples, rate, window_s, report)
        return 1
    whole = int(seconds / window_s + 1e-9)
    tail = seconds - whole * window_s
    if tail >= window_s / 2:
        report.flag(f"the record lasts {seconds:.1f} s: {whole + 1} windows of {window_s:g} s, the last of them "
                    f"holding its final {tail:.1f} s, zero-padded at the end.")
        return whole + 1
    if tail > window_s * WINDOW_TOLERANCE:
        report.flag(f"the record lasts {seconds:.1f} s: {whole} windows of {window_s:g} s; its final {tail:.1f} s "
                    f"(under half a window) are not scored.")
    return whole


# ----------------------------------------------------------------------------------------------------------------------
# Quality: what the signal looks like


def outlier_mask(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples far outside the record's own range: more than `OUTLIER_FACTOR` times the record's 99th-percentile
    deviation from their lead's median. Scale-free (any unit), and one corrupt 1e30 sample cannot move the quantile.
    Returns the mask (C, T), each lead's median (C, 1) and the allowed deviation from it."""
    median = np.median(signal, axis=1, keepdims=True)  # (C, 1)
    deviation = np.abs(signal - median)  # (C, T)
    limit = OUTLIER_FACTOR * float(np.percentile(deviation, OUTLIER_QUANTILE))
    return deviation > limit, median, limit


def repair_outliers(signal: np.ndarray, lead_names, policy: str, report: QualityReport) -> np.ndarray:
    """Flag outlying samples and, by `policy`, clip them to the range of their lead's other samples (`"clip"`),
    replace them by linear interpolation from their neighbours (`"interpolate"`) or leave them (`"keep"`), so that one
    corrupt sample cannot squash the record to a flat line under min-max scaling."""
    mask, _, _ = outlier_mask(signal)
    if not mask.any():
        return signal
    leads = [name for name, lead in zip(lead_names, mask) if lead.any()]
    worst = float(np.abs(signal[mask]).max())
    action = {"clip": "clipped", "interpolate": "interpolated", "keep": "kept (outlier_policy='keep')"}[policy]
    report.flag(f"{int(mask.sum())} sample(s) in lead(s) {leads} lie far outside the record's range (up to "
                f"{worst:.3g}); {action}.")
    if policy == "keep":
        return signal
    repaired = signal.copy()
    time = np.arange(signal.shape[1])
    for lead in np.flatnonzero(mask.any(axis=1)):  # the lead's median sample is never an outlier: `good` is not empty
        good = ~mask[lead]
        if policy == "interpolate":
            repaired[lead, ~good] = np.interp(time[~good], time[good], signal[lead, good])
        else:
            repaired[lead] = np.clip(signal[lead], signal[lead, good].min(), signal[lead, good].max())
    return repaired


def check_degenerate(signal: np.ndarray, lead_names, report: QualityReport) -> None:
    """Flag an all-zero or flat record, flat or clipped leads, and an amplitude implausible for millivolts."""
    low, high = float(signal.min()), float(signal.max())
    if low == high == 0.0:
        report.flag("every sample is zero (no signal).")
        return
    if low == high:
        report.flag(f"flat line: every sample equals {low:g}.")
        return
    span = high - low
    flat = [name for name, lead in zip(lead_names, signal) if lead.min() == lead.max()]
    if flat:
        report.flag(f"lead(s) {flat} are flat (constant).")
    clipped = [name for name, lead in zip(lead_names, signal) if lead.min() != lead.max() and _saturated(lead)]
    if clipped:
        report.flag(f"lead(s) {clipped} look clipped (>= {CLIPPED_FRACTION:.0%} of samples at their extreme value).")
    if span < MIN_SPAN_MV:
        report.flag(f"peak-to-peak amplitude {span:.3g} is implausibly small for millivolts (flat line or wrong units?).")
    elif span > MAX_SPAN_MV:
        report.flag(f"peak-to-peak amplitude {span:.3g} is implausibly large for millivolts (microvolts or ADC "
                    "counts?).")


def screen_batch(batch: np.ndarray, low: np.ndarray | None = None,
                 high: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, C, T) float64 records -> two (B,) masks, decided for the whole batch at once with the criteria of the
    per-record checks: `repair`, the records with NaN/Inf or outlying samples (what `repair_outliers` and the NaN
    repair act on), and `suspect`, those in which `check_degenerate` could flag something. The per-record checks then
    run only on those records. `low` / `high`: each lead's minimum and maximum (B, C), when the caller has them.

    The outlier test (`outlier_mask`) needs each lead's median and the record's 99th-percentile deviation, two
    selections that cost ~50x a min-max pass. Here a record is cleared of outliers by counting instead, with bounds
    that make the decision exact: a median of every `stride`-th sample, `approx`, is proven within `delta` of the true
    median by counting the samples beyond `approx -/+ delta`; then max |x - median| <= max |x - approx| + delta and the
    99th percentile of |x - median| >= that of |x - approx| - delta, whose lower bound is again a count. A record the
    bounds cannot clear (rare: a real outlier, or an unusual distribution) gets the exact test."""
    count, leads, samples = batch.shape
    if low is None or high is None:
        low, high = batch.min(axis=2), batch.max(axis=2)  # (B, C); NaN propagates, Inf shows
    finite = np.isfinite(low).all(axis=1) & np.isfinite(high).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):  # records with NaN/Inf are decided by `finite`
        approx = np.median(batch[:, :, :: max(1, samples // 512)], axis=2, keepdims=True)  # (B, C, 1)
        delta = 0.02 * (high - low)[..., None]
        median_low, median_high = (samples - 1) // 2, samples // 2  # the order statistics np.median averages
        median_bounded = (((batch < approx - delta).sum(axis=2) <= median_low)
                          & ((batch > approx + delta).sum(axis=2) <= samples - 1 - median_high)).all(axis=1)
        deviation = np.abs(batch - approx)
        slack = delta.max(axis=(1, 2))  # (B,)
        most = (deviation.max(axis=2) + delta[..., 0]).max(axis=1)  # >= max |x - median|
        threshold = (most / OUTLIER_FACTOR + slack) * (1 + 1e-9)
        # np.percentile's value >= the `floor`-th smallest deviation, which is >= threshold when no more than `floor`
        # deviations are below it
        floor = int(OUTLIER_QUANTILE / 100 * (leads * samples - 1))
        cleared = finite & median_bounded & ((deviation < threshold[:, None, None]).sum(axis=(1, 2)) <= floor)
    repair = ~finite
    for index in np.flatnonzero(finite & ~cleared):
        repair[index] = outlier_mask(batch[index])[0].any()
    span = high.max(axis=1) - low.min(axis=1)
    needed = max(3, int(np.ceil(CLIPPED_FRACTION * samples)))
    saturated = ((batch == high[..., None]).sum(axis=2) >= needed) | ((batch == low[..., None]).sum(axis=2) >= needed)
    with np.errstate(invalid="ignore"):
        suspect = ((low == high).any(axis=1) | (saturated & (low != high)).any(axis=1) | (span < MIN_SPAN_MV)
                   | (span > MAX_SPAN_MV))
    return repair, suspect


def _saturated(lead: np.ndarray) -> bool:
    needed = max(3, int(np.ceil(CLIPPED_FRACTION * lead.size)))
    return int((lead == lead.max()).sum()) >= needed or int((lead == lead.min()).sum()) >= needed


__all__ = ["ECGQualityWarning", "QualityReport", "OUTLIER_POLICIES", "as_numeric_array", "check_degenerate",
           "check_duration", "check_keywords", "check_lead_names", "check_sampling_rate", "check_wfdb_header_frequency",
           "dataframe_record", "dict_record", "is_dataframe", "outlier_mask", "repair_outliers", "screen_batch",
           "wfdb_record_name",
           "window_count"]

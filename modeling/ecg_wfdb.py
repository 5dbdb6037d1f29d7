"""WFDB records read with numpy: the header text parsed here, one-file records in formats 16, 212, 32 and 80 decoded
in one vectorised pass, whole or any span of samples; `wfdb` for everything else.

One reader for the dataset builders (`read_record`: a whole record as float32) and the feature extractor
(`WfdbRecord` in `feature_extraction_tamer`: a 24 h Holter record read window by window as float64, never whole).
`wfdb.rdsamp` spends milliseconds per record in header parsing and bookkeeping (with pandas 3 about 15 ms, some fifty
times the cost of reading the 120 kB of samples), the bottleneck of preparing MIMIC-IV-ECG's 800k records; the common
case, one signal file holding every lead (MIMIC-IV-ECG, PTB-XL, CinC `.mat`: format 16; older PhysioNet databases:
212), needs a few lines of text and `np.fromfile`. Values equal wfdb's `(d - baseline) / gain`, with NaN where a
sample holds the format's invalid-sample value. Anything else (multi-segment records, several signal files, other
formats, skew, several samples per frame, a missing or zero gain) is left to `wfdb` (`parse_header` returns None).

Needs only numpy (and `wfdb`, imported lazily, for the general case): it is copied next to saved checkpoints.
Header syntax: https://physionet.org/physiotools/wag/header-5.htm; signal formats:
https://physionet.org/physiotools/wag/signal-5.htm.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import numpy as np

# format -> (stored numpy dtype, offset of the stored value, bytes per sample); 212 packs two 12-bit samples in 3 bytes
FORMATS = {"16": ("<i2", 0, 2), "32": ("<i4", 0, 4), "80": ("u1", 128, 1), "212": (None, 0, 1.5)}
# each format's "no sample" code (its smallest digital value), read as NaN as wfdb does
INVALID_SAMPLE = {"16": -(2**15), "32": -(2**31), "80": -(2**7), "212": -(2**11)}


class HeaderError(ValueError):
    """The `.hea` file is not a WFDB header this reader or wfdb could read."""


class TruncatedSignalFile(ValueError):
    """The signal file holds fewer samples than the header announces."""


class WfdbSignals(NamedTuple):
    signal: np.ndarray  # (n_sig, T) float32 in each signal's physical units, NaN for invalid samples
    fs: float  # samples per second per signal
    names: list  # signal descriptions (lead names), as wfdb's `sig_name`
    units: list  # physical units, as wfdb's `units` ("mV" when the header names none)


class SignalLayout(NamedTuple):
    """What the numpy path needs from a header: one file, one format, one byte offset, per-signal scaling."""

    file_name: str
    fmt: str  # a key of FORMATS
    byte_offset: int
    n_sig: int
    n_samp: int | None  # None when the header gives no sample count: the file's size says (as wfdb infers it)
    fs: float
    gains: np.ndarray  # (n_sig,) ADC units per physical unit
    baselines: np.ndarray  # (n_sig,) ADC value of physical zero
    units: list
    names: list


def parse_header(text: str) -> SignalLayout | None:
    """The text of a `.hea` file -> its SignalLayout, or None when the record needs `wfdb`.

    Raises HeaderError for a header that is not WFDB (empty, no sampling frequency, not as many signal lines as it
    announces, non-numeric fields). A header without a sampling frequency is refused: wfdb would assume 250 Hz.
    """
    try:
        return _parse_header(text)
    except (ValueError, IndexError) as error:
        raise HeaderError(f"unreadable WFDB header: {error}") from None


def _parse_header(text: str) -> SignalLayout | None:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise ValueError("empty")
    record = lines[0].split()
    if len(record) < 3:
        raise ValueError("no sampling frequency on the record line")
    n_sig = int(record[1])
    fs = float(record[2].split("/")[0].split("(")[0])  # "500", "500/1000(0)": sampling / counter frequency
    if n_sig < 1 or len(lines) < 1 + n_sig:
        raise ValueError(f"{n_sig} signals announced, {len(lines) - 1} signal lines")
    if "/" in record[0]:
        return None  # a multi-segment record: segment lines follow, not signal lines
    if len(lines) > 1 + n_sig:
        raise ValueError(f"{n_sig} signals announced, {len(lines) - 1} signal lines")  # wfdb fails on these too
    n_samp = int(record[3]) if len(record) > 3 else None
    if n_samp is not None and n_samp < 1:
        return None
    signals = [line.split(maxsplit=8) for line in lines[1:]]  # the description may hold spaces
    if len({fields[0] for fields in signals}) != 1 or len({fields[1] for fields in signals}) != 1:
        return None  # several signal files, or several formats / byte offsets in one file
    if min(len(fields) for fields in signals) < 3:
        return None  # no gain: wfdb's default gain applies
    fmt, _, offset = signals[0][1].partition("+")
    fmt = fmt[:-2] if fmt.endswith("x1") else fmt  # "16x1": one sample per frame, the default
    if fmt not in FORMATS:
        return None  # another format, skew (":"), or several samples per frame
    scaling = [_gain_field(fields[2]) for fields in signals]  # (gain, baseline or None, units) per signal
    if any(gain == 0 for gain, _, _ in scaling):
        return None  # "uncalibrated": wfdb substitutes its default gain
    adc_zeros = [int(fields[4]) if len(fields) > 4 else 0 for fields in signals]
    baselines = [adc_zero if baseline is None else baseline for (_, baseline, _), adc_zero in zip(scaling, adc_zeros)]
    names = [fields[8] if len(fields) > 8 else "" for fields in signals]
    return SignalLayout(signals[0][0], fmt, int(offset or 0), n_sig, n_samp, fs,
                        np.array([gain for gain, _, _ in scaling]), np.array(baselines, dtype=np.int64),
                        [units for _, _, units in scaling], names)


@functools.lru_cache(maxsize=1024)
def _gain_field(text: str) -> tuple[float, int | None, str]:
    """'200.0(0)/mV' -> (200.0, 0, 'mV'); baseline None when absent (it defaults to the ADC zero). Cached: a corpus
    repeats a handful of these."""
    gain_text, _, units = text.partition("/")
    gain_text, _, baseline_text = gain_text.partition("(")
    return float(gain_text), (int(baseline_text.rstrip(")")) if baseline_text else None), units or "mV"


def frames_in_file(data_path: str, layout: SignalLayout) -> int:
    """How many whole frames (one sample of every signal) the signal file holds after its byte offset."""
    data_bytes = max(os.path.getsize(data_path) - layout.byte_offset, 0)
    if layout.fmt == "212":
        samples = data_bytes // 3 * 2 + (data_bytes % 3 == 2)  # a file may end inside a pair
    else:
        samples = data_bytes // FORMATS[layout.fmt][2]
    return samples // layout.n_sig


def read_digital(data_path: str, layout: SignalLayout, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames [start, stop) of the signal file (default: all the header announces) -> (stop - start, n_sig) ADC
    values, frames in rows (int16 for formats 16 and 80, int32 for 32 and 212). Reads only those bytes."""
    stop = layout.n_samp if stop is None else stop
    first, count = start * layout.n_sig, (stop - start) * layout.n_sig  # samples, counted across frames
    dtype, value_offset, sample_bytes = FORMATS[layout.fmt]
    if layout.fmt == "212":
        samples = _read_212(data_path, layout.byte_offset, first, count)
    else:
        samples = np.fromfile(data_path, dtype=dtype, count=count, offset=layout.byte_offset + first * sample_bytes)
        if value_offset:  # 8-bit offset binary: stored value - 128
            samples = samples.astype(np.int16) - np.int16(value_offset)
    if samples.size < count:
        raise TruncatedSignalFile(f"truncated signal file {os.path.basename(data_path)}: "
                                  f"{samples.size} of {count} samples")
    return samples.reshape(stop - start, layout.n_sig)


def _read_212(data_path: str, byte_offset: int, first: int, count: int) -> np.ndarray:
    """Samples [first, first + count) of a format 212 file: the 3-byte pairs that enclose them, unpacked."""
    first_pair, end_pair = first // 2, -(-(first + count) // 2)
    data = np.fromfile(data_path, dtype=np.uint8, count=3 * (end_pair - first_pair),
                       offset=byte_offset + 3 * first_pair)
    skip = first - 2 * first_pair  # 1 when the span starts with the second sample of a pair
    return _unpack_212(data, skip + count)[skip:]


def _unpack_212(data: np.ndarray, count: int) -> np.ndarray:
    """Format 212: two 12-bit two's-complement samples in three bytes; byte 1 holds the high nibbles (low nibble for
    the first sample, high nibble for the second)."""
    triples = np.zeros(-(-data.size // 3) * 3, dtype=np.int32)
    triples[: data.size] = data
    triples = triples.reshape(-1, 3)  # (pairs, 3)
    samples = np.empty(2 * len(triples), dtype=np.int32)
    samples[0::2] = triples[:, 0] | ((triples[:, 1] & 0x0F) << 8)
    samples[1::2] = triples[:, 2] | ((triples[:, 1] & 0xF0) << 4)
    complete = data.size // 3 * 2 + (data.size % 3 == 2)  # a file may end inside a pair
    samples = samples[: min(count, complete)]
    return samples - ((samples & 0x800) << 1)  # sign-extend 12 bits


def to_physical(digital: np.ndarray, layout: SignalLayout, dtype=np.float32) -> np.ndarray:
    """(T, n_sig) ADC values -> (n_sig, T) physical values, (d - baseline) / gain as in wfdb, NaN for invalid samples.

    float32 for the builders (exact integers below 2**24); float64 equals wfdb's own values bit for bit."""
    digital = np.ascontiguousarray(digital.T)  # (C, T): transposing the integers first is the cheap order
    signal = digital.astype(dtype)
    if layout.baselines.any():
        signal -= layout.baselines[:, None].astype(dtype)
    signal /= layout.gains[:, None].astype(dtype)
    invalid_code = INVALID_SAMPLE[layout.fmt]  # the smallest value of the format: `min` finds it in one pass
    if digital.size and digital.min() == invalid_code:
        signal[digital == invalid_code] = np.nan
    return signal


def read_record(record_path) -> WfdbSignals:
    """A WFDB record (path without extension) -> WfdbSignals; numpy when `parse_header` gives a layout, else
    `wfdb.rdsamp`.

    FileNotFoundError for a missing header or signal file; HeaderError, TruncatedSignalFile; whatever wfdb raises.
    """
    record_path = os.fspath(record_path)
    layout = read_header(record_path)
    if layout is None:
        return read_record_with_wfdb(record_path)
    data_path = signal_file(record_path, layout)
    if layout.n_samp is None:
        layout = layout._replace(n_samp=frames_in_file(data_path, layout))
    digital = read_digital(data_path, layout)
    return WfdbSignals(to_physical(digital, layout), layout.fs, layout.names, layout.units)


def read_header(record_path) -> SignalLayout | None:
    """`parse_header` of the record's `.hea` file (path without extension)."""
    with open(os.fspath(record_path) + ".hea", encoding="latin-1") as header:
        return parse_header(header.read())


def signal_file(record_path, layout: SignalLayout) -> str:
    """The path of the layout's signal file: next to the header."""
    return os.path.join(os.path.dirname(os.fspath(record_path)), layout.file_name)


def import_wfdb():
    try:
        import wfdb
    except ImportError as error:
        raise ImportError("This WFDB record needs the `wfdb` package: pip install wfdb") from error
    return wfdb


def read_record_with_wfdb(record_path) -> WfdbSignals:
    """The general case: `wfdb.rdsamp`, as float32 (n_sig, T)."""
    values, fields = import_wfdb().rdsamp(os.fspath(record_path))
    units = [unit or "mV" for unit in fields["units"]]
    return WfdbSignals(np.ascontiguousarray(values.T, dtype=np.float32), float(fields["fs"]),
                       list(fields["sig_name"]), units)


__all__ = ["FORMATS", "INVALID_SAMPLE", "HeaderError", "SignalLayout", "TruncatedSignalFile", "WfdbSignals",
           "frames_in_file", "parse_header", "read_digital", "read_header", "read_record", "read_record_with_wfdb",
           "signal_file", "to_physical"]

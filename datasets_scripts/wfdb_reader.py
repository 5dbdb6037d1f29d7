"""WFDB records read with numpy: the header text parsed here, format 16 and 212 signal files decoded in one
vectorised pass, `wfdb.rdsamp` for everything else.

`wfdb.rdsamp` spends milliseconds per record in header parsing and bookkeeping (with pandas 3 about 15 ms, some
fifty times the cost of reading the 120 kB of samples), which makes it the bottleneck of preparing MIMIC-IV-ECG's
800k records. The common case, one signal file holding every lead in format 16 (MIMIC-IV-ECG, PTB-XL, CinC `.mat`)
or 212 (older PhysioNet databases), needs a few lines of text and `np.fromfile`. The result equals
`wfdb.rdsamp(record)[0].T` to float32 precision, including NaN where a sample holds the format's invalid-sample
value. Anything else (multi-segment records, several signal files, other formats, skew, several samples per frame,
a missing gain or sample count) goes through `wfdb.rdsamp`.

This module needs only numpy (and `wfdb` for the general case), so the feature extractor can use it as well.
Header syntax: https://physionet.org/physiotools/wag/header-5.htm; signal formats:
https://physionet.org/physiotools/wag/signal-5.htm.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import numpy as np

INVALID_SAMPLE = {"16": -32768, "212": -2048}  # the formats' "no sample" codes, read as NaN (as wfdb does)


class HeaderError(ValueError):
    """The `.hea` file is not a WFDB header this reader or wfdb could read."""


class TruncatedSignalFile(ValueError):
    """The signal file holds fewer samples than the header announces."""


class WfdbRecord(NamedTuple):
    signal: np.ndarray  # (n_sig, T) float32 in each signal's physical units, NaN for invalid samples
    fs: float  # samples per second per signal
    names: list  # signal descriptions (lead names), as wfdb's `sig_name`
    units: list  # physical units, as wfdb's `units` ("mV" when the header names none)


class SignalLayout(NamedTuple):
    """What the numpy path needs from a header: one file, one format, one byte offset, per-signal scaling."""

    file_name: str
    fmt: str  # "16" or "212"
    byte_offset: int
    n_sig: int
    n_samp: int
    fs: float
    gains: np.ndarray  # (n_sig,) ADC units per physical unit
    baselines: np.ndarray  # (n_sig,) ADC value of physical zero
    units: list
    names: list


def parse_header(text: str) -> SignalLayout | None:
    """The text of a `.hea` file -> its SignalLayout, or None when the record needs `wfdb.rdsamp`.

    Raises HeaderError for a header that is not WFDB (empty, no sampling frequency, too few signal lines,
    non-numeric fields). A header without a sampling frequency is refused: wfdb would assume 250 Hz.
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
    if len(record) < 4 or int(record[3]) < 1 or "/" in record[0]:
        return None  # no sample count (wfdb infers it from the file size), or a multi-segment record
    n_samp = int(record[3])
    signals = [line.split(maxsplit=8) for line in lines[1:1 + n_sig]]  # the description may hold spaces
    if len({fields[0] for fields in signals}) != 1 or len({fields[1] for fields in signals}) != 1:
        return None  # several signal files, or several formats / byte offsets in one file
    if min(len(fields) for fields in signals) < 3:
        return None  # no gain: wfdb's default gain applies
    fmt, _, offset = signals[0][1].partition("+")
    fmt = fmt[:-2] if fmt.endswith("x1") else fmt  # "16x1": one sample per frame, the default
    if fmt not in INVALID_SAMPLE:
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


def read_digital(data_path: str, layout: SignalLayout) -> np.ndarray:
    """The signal file -> (n_samp, n_sig) ADC values (int16 for format 16, int32 for 212), frames in rows."""
    count = layout.n_sig * layout.n_samp
    if layout.fmt == "16":
        samples = np.fromfile(data_path, dtype="<i2", count=count, offset=layout.byte_offset)
    else:
        samples = _unpack_212(np.fromfile(data_path, dtype=np.uint8, count=-(-count * 3 // 2),
                                          offset=layout.byte_offset), count)
    if samples.size < count:
        raise TruncatedSignalFile(f"truncated signal file {os.path.basename(data_path)}: "
                                  f"{samples.size} of {count} samples")
    return samples.reshape(layout.n_samp, layout.n_sig)


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


def to_physical(digital: np.ndarray, layout: SignalLayout) -> np.ndarray:
    """(n_samp, n_sig) ADC values -> (n_sig, n_samp) float32 physical values, (d - baseline) / gain as in wfdb."""
    digital = np.ascontiguousarray(digital.T)  # (C, T): transposing the integers first is the cheap order
    signal = digital.astype(np.float32)  # exact below 2**24
    if layout.baselines.any():
        signal -= layout.baselines[:, None].astype(np.float32)
    signal /= layout.gains[:, None].astype(np.float32)
    invalid_code = INVALID_SAMPLE[layout.fmt]  # the smallest value of the format: `min` finds it in one pass
    if digital.min() == invalid_code:
        signal[digital == invalid_code] = np.nan
    return signal


def read_record(record_path) -> WfdbRecord:
    """A WFDB record (path without extension) -> WfdbRecord; numpy for one-file format 16/212, else wfdb.rdsamp.

    FileNotFoundError for a missing header or signal file; HeaderError, TruncatedSignalFile; whatever wfdb raises.
    """
    record_path = os.fspath(record_path)
    with open(record_path + ".hea", encoding="latin-1") as header:
        layout = parse_header(header.read())
    if layout is None:
        return read_record_with_wfdb(record_path)
    digital = read_digital(os.path.join(os.path.dirname(record_path), layout.file_name), layout)
    return WfdbRecord(to_physical(digital, layout), layout.fs, layout.names, layout.units)


def read_record_with_wfdb(record_path) -> WfdbRecord:
    """The general case: `wfdb.rdsamp`, as float32 (n_sig, T)."""
    try:
        import wfdb
    except ImportError as error:
        raise ImportError("This WFDB record needs the `wfdb` package: pip install wfdb") from error
    values, fields = wfdb.rdsamp(os.fspath(record_path))
    units = [unit or "mV" for unit in fields["units"]]
    return WfdbRecord(np.ascontiguousarray(values.T, dtype=np.float32), float(fields["fs"]),
                      list(fields["sig_name"]), units)

"""The raw download's folders and tables, opened with errors that name the path and what is wrong with it.

Every builder reads its `--raw_dir` and its CSV tables through these two functions, so a file given as a folder, or
a binary file where a CSV should be, ends with one line naming it (`datasets_scripts.cli.run`), never pandas'
"error: utf-8".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def raw_folder(path, what: str = "raw_dir") -> Path:
    """`path` as a Path after checking that it is an existing folder; FileNotFoundError or NotADirectoryError
    naming `what` otherwise."""
    path = Path(path)
    if path.is_file():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder: give the folder of the raw download.")
    if not path.is_dir():
        raise FileNotFoundError(f"{what} does not exist: {path}")
    return path


def read_csv(path, **kwargs) -> pd.DataFrame:
    """`pandas.read_csv(path, **kwargs)`; a file that is not CSV text (binary, another encoding, empty, unparsable)
    is a ValueError naming it."""
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a UTF-8 CSV text file (byte {error.object[error.start:error.start + 1]!r} "
                         f"at position {error.start}): is it the right file?") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: expected a CSV table with a header row.") from None
    except pd.errors.ParserError as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"{path} is not a readable CSV table ({reason}).") from None


__all__ = ["raw_folder", "read_csv"]

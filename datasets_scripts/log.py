"""Logging for the builders, in the style of `transformers.utils.logging`: module loggers under one library logger
("datasets_scripts", INFO by default, to stderr), a verbosity setting, and tqdm progress bars that follow it.

    from datasets_scripts import log
    log.set_verbosity(log.WARNING)  # summaries and progress bars off; drop reasons of failed records still shown
"""

from __future__ import annotations

import logging
import sys
from logging import DEBUG, ERROR, INFO, WARNING  # noqa: F401  (re-exported levels, as transformers does)

from tqdm.auto import tqdm

LIBRARY_LOGGER = "datasets_scripts"
VERBOSITY = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (a redirected or captured stderr included)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property always reads sys.stderr
        pass


def _library_logger() -> logging.Logger:
    logger = logging.getLogger(LIBRARY_LOGGER)
    if not logger.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(INFO)
        logger.propagate = False  # the application's root handlers would print each line twice
    return logger


def get_logger(name: str) -> logging.Logger:
    """A module logger under the library logger (pass `__name__`)."""
    _library_logger()
    return logging.getLogger(name)


def set_verbosity(level: int | str) -> None:
    """Level of every builder logger: `log.INFO` (default), `log.WARNING`, ... or their names ("warning")."""
    if isinstance(level, str):
        if level.lower() not in VERBOSITY:
            raise ValueError(f"unknown verbosity {level!r}; choose one of {', '.join(VERBOSITY)}")
        level = VERBOSITY[level.lower()]
    _library_logger().setLevel(level)


def get_verbosity() -> int:
    return _library_logger().getEffectiveLevel()


def progress_bar(iterable=None, **kwargs):
    """tqdm bar for long preparation work, shown when the builders log at INFO or below."""
    return tqdm(iterable, disable=get_verbosity() > INFO, **kwargs)

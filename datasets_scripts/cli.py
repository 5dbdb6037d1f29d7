"""Arguments every `python -m datasets_scripts.<source>` command shares, and error reporting at the boundary."""

from __future__ import annotations

import argparse

from tamer_hf.commands import ArgumentParser  # noqa: F401  (two-line usage errors)

from . import log
from .common import parse_split_files_argument

logger = log.get_logger(__name__)
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)  # bad input: status 2


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (a 0 would divide by zero or mean nothing)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def base_parser(description: str, raw_dir_required: bool = True) -> argparse.ArgumentParser:
    parser = ArgumentParser(description=description)
    parser.add_argument("--raw_dir", required=raw_dir_required, help="folder of the raw download")
    parser.add_argument("--output_dir", required=True, help="where the DatasetDict is written (load_from_disk)")
    parser.add_argument("--num_workers", type=int, default=2, help="record-loading processes (default 2)")
    parser.add_argument("--shard_size", type=positive_int, default=1000, help="records per Arrow shard (default 1000)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing preparation in output_dir")
    add_verbosity_argument(parser)
    return parser


def add_verbosity_argument(parser: argparse.ArgumentParser):
    parser.add_argument("--verbosity", choices=tuple(log.VERBOSITY), default="info",
                        help="info: summaries and progress bars; warning: problems only")


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the command line and apply `--verbosity` to the builders' loggers."""
    args = parser.parse_args(argv)
    log.set_verbosity(args.verbosity)
    return args


def add_split_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV",
                        help="external split, e.g. train=merl_train.csv validation=merl_val.csv test=merl_test.csv; "
                             "records are matched by id and records absent from every file are dropped")
    parser.add_argument("--protocol", choices=("default", "merl"), default="default",
                        help="'merl' reproduces the MERL preprocessing quirks that published numbers depend on")


def split_files_from(args) -> dict | None:
    return parse_split_files_argument(getattr(args, "split_files", None))


def run(main_function, argv=None):
    """Run a builder's command line through `tamer_hf.commands.run`: bad input (missing files, bad columns, bad
    options) ends with one line `error: ...` and exit status 2, any other error with a short message and status 1
    (`--debug` or TAMER_DEBUG=1: the traceback)."""
    from tamer_hf.commands import run as run_program

    status = run_program(main_function, argv, program="", user_errors=USER_ERRORS)
    if status:
        raise SystemExit(status)

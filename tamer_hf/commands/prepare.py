"""`tamer prepare SOURCE ...`: the dataset builder `python -m datasets_scripts.SOURCE ...` (raw public download ->
DatasetDict folder with a dataset card), e.g.

    tamer prepare ptbxl --raw_dir PTBXL_DIR --output_dir data/ptbxl --task super
    tamer prepare synthetic --output_dir data/synthetic

docs/datasets.md describes each source; `tamer prepare SOURCE --help` lists its options.
"""

import argparse
import importlib
import sys

from . import ArgumentParser, run

SOURCES = ("ptbxl", "cpsc2018", "csn", "code_test", "mimic_iv_ecg", "custom", "synthetic")
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)  # as datasets_scripts.cli


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=SOURCES, help="which builder (each has its own --help)")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the builder's arguments")
    args = parser.parse_args(argv)
    sys.argv[0] = f"{parser.prog} {args.source}"  # the builder's usage and error lines name the command typed
    return importlib.import_module(f"datasets_scripts.{args.source}").main(args.arguments)


if __name__ == "__main__":
    sys.exit(run(main, program="python -m tamer_hf.commands.prepare", user_errors=USER_ERRORS))

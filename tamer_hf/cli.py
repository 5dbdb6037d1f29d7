"""`tamer`: one command with a subcommand per program (`tamer_hf.commands`), installed by `pip install tamer-hf`.

    tamer pretrain [...]    tamer finetune [...]    tamer eval [...]    tamer prepare SOURCE [...]    tamer push [...]
    tamer demo --model FOLDER_OR_ID [--port N] [--host ADDRESS] [--write_space DIR]
    tamer <command> --help

`python -m tamer_hf <command> ...` is the same program; `accelerate launch [--multi_gpu ...] -m tamer_hf pretrain ...`
runs it on several processes.
"""

from __future__ import annotations

import importlib
import sys

from .commands import PROGRAM, run

# subcommand -> (module of tamer_hf.commands, one-line summary)
COMMANDS = {
    "pretrain": ("pretrain", "ECG-report pre-training of any model family"),
    "finetune": ("finetune", "fine-tune or linearly probe a pre-trained folder on a labelled dataset"),
    "eval": ("zero_shot_eval", "zero-shot (+ domain-shift, linear-probe) evaluation with a results record"),
    "prepare": ("prepare", "build a DatasetDict from a raw public download (datasets_scripts.SOURCE)"),
    "push": ("push", "upload a saved model folder and its model card to the Hugging Face Hub"),
    "demo": ("demo", "serve the web demo of a model (needs tamer-hf[demo]) or write it as a Hub Space folder"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items())
    return (f"usage: {PROGRAM} <command> [options]\n\ncommands:\n{rows}\n\n"
            f"`{PROGRAM} <command> --help` lists its options.")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, arguments = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROGRAM}: error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"tamer_hf.commands.{COMMANDS[name][0]}")
    program = f"{PROGRAM} {name}"
    sys.argv[0] = program  # argparse names the subcommand in its usage and error lines
    try:
        return run(module.main, arguments, program=program, user_errors=module.USER_ERRORS)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        return stop.code if isinstance(stop.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())

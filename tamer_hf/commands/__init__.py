"""The command-line programs. Each module has `main(argv)` (raises on bad input) and is run as

    tamer <command> ...                              # console script installed by `pip install tamer-hf`
    python -m tamer_hf <command> ...
    python -m tamer_hf.commands.<module> ...
    accelerate launch [--multi_gpu ...] -m tamer_hf <command> ...   # pretrain / finetune on several processes

| command | module | what it does |
|---|---|---|
| `pretrain` | `pretrain` | ECG-report pre-training of any family (docs/training.md) |
| `finetune` | `finetune` | fine-tuning or linear probing of a pre-trained folder (docs/finetuning.md) |
| `eval` | `zero_shot_eval` | zero-shot / domain-shift / linear-probe evaluation (docs/zero_shot.md) |
| `prepare` | `prepare` | `datasets_scripts.<source>`: raw PhysioNet download -> DatasetDict (docs/datasets.md) |
| `push` | `push` | upload a saved folder and its model card to the Hub |
| `demo` | `demo` | the web demo (`tamer-hf[demo]`): serve it, or write it as a Hub Space folder |

`examples/*.py` are thin wrappers around these modules.
"""

from __future__ import annotations

import argparse
import sys

PROGRAM = "tamer"  # the console script's name (setup.cfg entry_points); the distribution's, not a model family's


DEBUG_FLAG = "--debug"  # any command: show the traceback of an error (also TAMER_DEBUG=1)
USAGE_ERROR, RUNTIME_ERROR, INTERRUPTED = 2, 1, 130  # exit statuses


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are two lines, where the options are listed and then the error (last, as
    argparse puts it), instead of the whole usage block (30 lines for `tamer pretrain`); status 2 as argparse's."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: options: {self.prog} --help\n{self.prog}: error: {message}\n")


def run(main, argv=None, program: str | None = None, user_errors: tuple = ()) -> int:
    """Call `main(argv)` and turn what it raises into an exit status with a short message on stderr, never a
    traceback unless asked (`--debug` anywhere in argv, or TAMER_DEBUG=1):

    - bad input (an exception of `user_errors`): one line `PROGRAM: error: MESSAGE`, status 2;
    - the network unreachable (a ConnectionError, e.g. `tamer_hf.hub.reaching_the_hub`'s: offline, no route to the
      Hub): one line `PROGRAM: error: MESSAGE`, status 1 - a traceback would add nothing;
    - any other error (a crash, a diverging run, a full disk): `PROGRAM: error: Type: MESSAGE` and a line saying how
      to see the traceback, status 1;
    - Ctrl-C: `PROGRAM: interrupted`, status 130.
    Returns the exit status."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("TAMER_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    prefix = f"{PROGRAM if program is None else program}: " if program != "" else ""  # "": no program name
    try:
        main(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}interrupted", file=sys.stderr)
        return INTERRUPTED
    except user_errors as error:
        if debug:
            raise
        message = error.args[0] if error.args else str(error)
        print(f"{prefix}error: {message}", file=sys.stderr)
        return USAGE_ERROR
    except ConnectionError as error:
        if debug:
            raise
        print(f"{prefix}error: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}",
              file=sys.stderr)
        return RUNTIME_ERROR
    except Exception as error:  # noqa: BLE001 - the program's last word: a short message, the traceback on request
        if debug:
            raise
        lines = str(error).strip().splitlines() or [""]
        message = lines[0] + (" ..." if len(lines) > 1 else "")
        print(f"{prefix}error: {type(error).__name__}: {message}\n"
              f"{prefix}(run again with {DEBUG_FLAG}, or TAMER_DEBUG=1, for the traceback)", file=sys.stderr)
        return RUNTIME_ERROR
    return 0


__all__ = ["ArgumentParser", "DEBUG_FLAG", "PROGRAM", "run"]

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

import sys

PROGRAM = "tamer"  # the console script's name (setup.cfg entry_points); the distribution's, not a model family's


def run(main, argv=None, program: str | None = None, user_errors: tuple = ()) -> int:
    """Call `main(argv)`; an exception of `user_errors` (bad input) ends as one line `PROGRAM: error: MESSAGE` on
    stderr and exit status 2 instead of a traceback. Returns the exit status."""
    try:
        main(argv)
    except user_errors as error:
        message = error.args[0] if error.args else str(error)
        print(f"{program or PROGRAM}: error: {message}", file=sys.stderr)
        return 2
    return 0


__all__ = ["PROGRAM", "run"]

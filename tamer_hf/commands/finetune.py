"""`tamer finetune`: fine-tune (or linearly probe) a pre-trained ECG model of any family on a labelled dataset.

    tamer finetune --model runs/tamer --dataset data/ptbxl --output_dir runs/ft-ptbxl-10 --train_fraction 10%
    accelerate launch -m tamer_hf finetune --model runs/tamer --dataset data/ptbxl --output_dir runs/probe \
        --train_fraction 1% --freeze_encoder

docs/finetuning.md lists every option.
"""

import sys

from ..finetuning import finetune, parse_args
from ..training import InputError
from . import run

USER_ERRORS = (InputError, FileNotFoundError)  # a diverging run (FloatingPointError) is a runtime error


def main(argv=None):
    args = parse_args(argv)  # the recipe's settings, explicit options winning
    return finetune(args)  # data -> family head -> accelerator.prepare -> epochs + validation -> best model -> test


if __name__ == "__main__":
    sys.exit(run(main, program="python -m tamer_hf.commands.finetune", user_errors=USER_ERRORS))

"""`tamer pretrain`: ECG-report pre-training of any model family (TAMER, C-MELT, ...) with 🤗 Accelerate.

Quick start (offline, minutes on 2 CPU cores): a synthetic ECG-report corpus is generated in-process, a tokenizer is
trained on its reports, and a small model learns until its zero-shot macro-AUC on held-out records is printed:

    tamer pretrain                                               # TAMER (--model_type tamer)
    tamer pretrain --model_type cmelt --model_preset cmelt-quick

Several processes: `accelerate launch --multi_gpu --num_processes 8 -m tamer_hf pretrain --dataset data/mimic
--output_dir runs/tamer`. docs/training.md lists every option.
"""

import sys

from ..training import InputError, parse_args, pretrain
from . import run

USER_ERRORS = (InputError, FileNotFoundError)  # a diverging run (FloatingPointError) is a runtime error


def main(argv=None):
    args = parse_args(argv)  # paper defaults, or the quick-start defaults when --dataset is omitted
    return pretrain(args)  # data -> model -> accelerator.prepare -> loop -> checkpoints -> save_pretrained + card


if __name__ == "__main__":
    sys.exit(run(main, program="python -m tamer_hf.commands.pretrain", user_errors=USER_ERRORS))

"""ECG-report pre-training of any model family (TAMER, C-MELT, ...) with 🤗 Accelerate: `tamer pretrain`
(`tamer_hf.commands.pretrain`) as a script.

Quick start (offline, ~minutes on 2 CPU cores): a synthetic ECG-report corpus is generated in-process, a tokenizer is
trained on its reports, and a small model learns until its zero-shot macro-AUC on held-out records is printed:

    accelerate launch examples/pretrain.py                       # TAMER (--model_type tamer)
    python examples/pretrain.py --model_type cmelt --model_preset cmelt-quick

A paper-sized TAMER run (AdamW 2e-4, weight decay 1e-7, CosineAnnealingWarmRestarts T_0=40000, global batch 256 over
all processes, 50 epochs, frozen ncbi/MedCPT-Query-Encoder) on a corpus prepared by `python -m datasets_scripts.mimic_iv_ecg`:

    accelerate launch --multi_gpu --num_processes 8 examples/pretrain.py --dataset data/mimic --output_dir runs/tamer

Resume a killed run exactly where its last checkpoint left it:

    accelerate launch examples/pretrain.py --dataset data/mimic --output_dir runs/tamer --resume_from_checkpoint latest

See docs/training.md for every option (loss-term switches, text-feature cache, duplicate-report masking, custom data).
"""

import sys

from tamer_hf.commands import pretrain, run


def main(argv=None):
    return pretrain.main(argv)  # data -> model -> accelerator.prepare -> loop -> checkpoints -> save_pretrained + card


if __name__ == "__main__":
    sys.exit(run(main, program="pretrain.py", user_errors=pretrain.USER_ERRORS))

"""Fine-tune (or linearly probe) a pre-trained ECG model of any family (TAMER, C-MELT, ...) on a labelled dataset,
with 🤗 Accelerate: `tamer finetune` (`tamer_hf.commands.finetune`) as a script.

The pre-trained folder's `model_type` picks the family's `…ForECGClassification` head: the pre-trained encoder and a
new linear layer over its ECG embedding, trained with multi-label BCE. The epoch is selected on the validation
macro-AUC, the selected model and processor are saved to `--output_dir`, the test split is scored once with them
(per-class and macro AUC, the evaluation harness's metric), and `results.json` records the run.

    python -m datasets_scripts.ptbxl --raw_dir PTBXL_DIR --output_dir data/ptbxl --task super
    accelerate launch examples/finetune.py --model runs/tamer --dataset data/ptbxl --output_dir runs/ft-ptbxl-10 \
        --train_fraction 10%                                    # full fine-tuning, default recipe
    accelerate launch examples/finetune.py --model runs/tamer --dataset data/ptbxl --output_dir runs/probe-1 \
        --train_fraction 1% --freeze_encoder                    # linear probe through the same code
    accelerate launch examples/finetune.py --model runs/cmelt --dataset data/ptbxl --output_dir runs/ft \
        --recipe cmelt                                          # C-MELT: 100 epochs, batch 256, lr 5e-5

The saved folder loads with `AutoModelForAudioClassification.from_pretrained(output_dir)` (after `import tamer_hf`,
or with `trust_remote_code=True` without it). See docs/finetuning.md.
"""

import sys

from tamer_hf.commands import finetune, run


def main(argv=None):
    return finetune.main(argv)  # data -> family head -> prepare -> epochs + validation -> best model -> test


if __name__ == "__main__":
    sys.exit(run(main, program="finetune.py", user_errors=finetune.USER_ERRORS))

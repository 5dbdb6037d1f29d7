"""Parameter counts of the TAMER presets with a MedCPT-shaped report encoder: `python -m tamer_hf.parameter_count`.

Models are built on the meta device (no memory, no initialisation), so the whole table takes seconds.
"""

import argparse

import torch

from .modeling.configuration_tamer import TamerConfig
from .modeling.modeling_tamer import TamerModel
from .presets import MODEL_PRESETS, SIZE_PRESETS, preset_config

# Parameter counts the papers print: TAMER 122.05 M against MERL 114.27 M (TAMER, CVPR 2026, model-size comparison).
PAPER_PARAMETERS = {"paper": 122.05e6, "merl": 114.27e6}


def medcpt_text_config():
    """The shape of `ncbi/MedCPT-Query-Encoder` (BERT-base: 30522 tokens, 768 x 12 layers, 512 positions), without
    weights."""
    from transformers import BertConfig

    return BertConfig()


def count_parameters(config: TamerConfig) -> tuple[int, int]:
    """(total, trainable) parameters of a TamerModel of `config`, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = TamerModel(config)
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return total, trainable


def parameter_table(model_size: str | None = None) -> list[dict]:
    """One row per preset: total / trainable parameters with a MedCPT-shaped report encoder."""
    rows = []
    for name in MODEL_PRESETS:
        config = preset_config(name, text_config=medcpt_text_config().to_dict(), model_size=model_size)
        total, trainable = count_parameters(config)
        paper = PAPER_PARAMETERS.get(name) if model_size is None else None  # printed for the paper's sizes only
        rows.append({"preset": name, "total": total, "trainable": trainable, "paper": paper})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| preset | total | trainable | paper |", "| --- | ---: | ---: | ---: |"]
    for row in rows:
        paper = f"{row['paper'] / 1e6:.2f} M" if row["paper"] else ""
        lines.append(f"| `{row['preset']}` | {row['total']:,} ({row['total'] / 1e6:.2f} M) | "
                     f"{row['trainable']:,} ({row['trainable'] / 1e6:.2f} M) | {paper} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Parameter counts of the TAMER presets (MedCPT-shaped report "
                                     "encoder).")
    parser.add_argument("--model_size", choices=sorted(SIZE_PRESETS), help="put every preset at this size")
    print(format_table(parameter_table(parser.parse_args(argv).model_size)))


if __name__ == "__main__":
    main()

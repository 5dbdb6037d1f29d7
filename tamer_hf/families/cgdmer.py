"""The CG-DMER family for the pre-training loop: presets (sizes x the paper's Table 3 variants), the BERT report
encoder (MedCPT or a local one, trained with the model), and the data collator (ECGs and report tokens; the model
draws the spatio-temporal ECG masks and the MLM corruption at each step, see `CgdmerCollator`).

The paper (arXiv 2602.21154) states no optimiser, batch or schedule. With `--dataset` the defaults are ours, from the
work it builds on: AdamW lr 2e-4 and 50 epochs at a global batch of 256 (MERL, whose benchmark the paper reports on),
weight decay 0.05 (ST-MEM / MAE), a cosine schedule after 1000 warm-up steps, nothing frozen, reports up to 256
tokens (MERL). With no `--dataset`, the offline quick start replaces them.

Presets: a size (`paper`, `quick`, `tiny`) with a variant (`v1` ... `v4`, the paper's Table 3):

    cgdmer-paper   paper size, full model (= v4)          cgdmer-v1   quick size, SigLIP only
    cgdmer-quick   quick size, full model (the quick start) cgdmer-v2   + spatio-temporal masked ECG reconstruction
    cgdmer-tiny    tiny size, full model (tests)          cgdmer-v3   + masked report reconstruction (MLM)
                                                          cgdmer-v4   + disentanglement (= cgdmer-quick)

`--model_size paper|quick|tiny` puts a preset's variant at another size (`--model_preset cgdmer-v2 --model_size
paper`).
"""

from __future__ import annotations

import argparse

import torch

from ..modeling.configuration_cgdmer import LOSS_TERMS, CgdmerConfig
from ..modeling.ecg_masking import mask_tokens_for_mlm, spatiotemporal_mask
from ..modeling.feature_extraction_tamer import TamerFeatureExtractor
from ..modeling.modeling_cgdmer import CgdmerForECGClassification, CgdmerModel
from ..modeling.processing_cgdmer import CgdmerProcessor
from . import ModelFamily, ecg_input_values

PAPER_TEXT_ENCODER = "ncbi/MedCPT-Query-Encoder"  # [ours: MERL's report encoder; the paper's is not known]
LOCAL_TEXT_ENCODER = "local"  # a WordPiece tokenizer trained on the corpus' reports + a small BERT trained along
# ECG scaling of the feature extractor: each lead standardised over the record [ours]; see CgdmerProcessor
FEATURE_NORMALIZATION = "zscore"

# SigLIP's bias starts at -10 for its 32k-pair batches; a learnable bias moves by about the learning rate per step, so
# a short run at batch 32 keeps it near where it starts. -3.5 ~ -log 32, the log-odds of a positive pair in a batch of
# 32 [ours]; measured on 400-step quick runs: held-out macro-AUC 0.799 against 0.723 with -10.
SMALL_BATCH_SIGLIP_BIAS = -3.5
# Sizes. paper: every CgdmerConfig default (ViT-B over 0.25 s patches as ST-MEM, MedCPT-shaped BERT; our choices,
# the paper gives none). quick: the offline quick start on 2 CPU cores. tiny: tests.
SIZES = {
    "paper": {},
    "quick": dict(
        patch_size=250, ecg_hidden_size=128, ecg_num_layers=3, ecg_num_heads=4, ecg_intermediate_size=256,
        mask_time_span=2, decoder_hidden_size=64, decoder_num_layers=1, decoder_num_heads=4,
        decoder_intermediate_size=128, hidden_size=64, feature_encoder_intermediate_size=64,
        siglip_logit_bias_init=SMALL_BATCH_SIGLIP_BIAS,
    ),
    "tiny": dict(
        patch_size=500, ecg_hidden_size=32, ecg_num_layers=1, ecg_num_heads=2, ecg_intermediate_size=64,
        mask_time_span=1, decoder_hidden_size=16, decoder_num_layers=1, decoder_num_heads=2,
        decoder_intermediate_size=32, hidden_size=16, feature_encoder_intermediate_size=16,
        siglip_logit_bias_init=SMALL_BATCH_SIGLIP_BIAS,
    ),
}
# The local BERT of each size with --text_encoder local: (hidden size, layers, heads)
LOCAL_TEXT_SIZES = {"paper": (768, 12, 12), "quick": (128, 2, 2), "tiny": (32, 1, 2)}
# The paper's Table 3: each variant adds one component to the previous one
VARIANTS = {
    "v1": dict(use_siglip=True, use_ecg_reconstruction=False, use_mlm=False, use_disentanglement=False),
    "v2": dict(use_siglip=True, use_ecg_reconstruction=True, use_mlm=False, use_disentanglement=False),
    "v3": dict(use_siglip=True, use_ecg_reconstruction=True, use_mlm=True, use_disentanglement=False),
    "v4": dict(use_siglip=True, use_ecg_reconstruction=True, use_mlm=True, use_disentanglement=True),
}
PRESET_LAYOUT = {  # preset -> (size, variant)
    "cgdmer-paper": ("paper", "v4"),
    "cgdmer-quick": ("quick", "v4"),
    "cgdmer-tiny": ("tiny", "v4"),
    "cgdmer-v1": ("quick", "v1"),
    "cgdmer-v2": ("quick", "v2"),
    "cgdmer-v3": ("quick", "v3"),
    "cgdmer-v4": ("quick", "v4"),
}
MODEL_PRESETS = {name: {**SIZES[size], **VARIANTS[variant]} for name, (size, variant) in PRESET_LAYOUT.items()}

PAPER_DEFAULTS = dict(
    model_preset="cgdmer-paper", text_encoder=PAPER_TEXT_ENCODER, optimizer="adamw", learning_rate=2e-4,
    weight_decay=0.05, lr_scheduler="cosine", warmup_steps=1000, num_train_epochs=50, global_batch_size=256,
    max_text_length=256, precise_bn_batches=0, eval_steps=2000, checkpointing_steps=2000, logging_steps=50,
)
QUICK_START_DEFAULTS = dict(
    model_preset="cgdmer-quick", text_encoder=LOCAL_TEXT_ENCODER, optimizer="adamw", learning_rate=1e-3,
    weight_decay=0.01, lr_scheduler="cosine", warmup_steps=50, max_steps=800, global_batch_size=32,
    max_text_length=64, precise_bn_batches=0, eval_steps=200, checkpointing_steps=200, logging_steps=10,
)


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CG-DMER")
    group.add_argument("--model_size", choices=sorted(SIZES),
                       help="put --model_preset's variant at this size (e.g. --model_preset cgdmer-v2 --model_size "
                       "paper); default: the preset's own size")
    group.add_argument("--patch_size", type=int, help="samples per ECG patch (the paper sweeps the patch number)")
    group.add_argument("--mask_ratio", type=float, help="share of the ECG patches masked (the paper sweeps it)")
    group.add_argument("--mask_lead_ratio", type=float, help="share of the leads masked whole")
    group.add_argument("--mask_time_ratio", type=float, help="share of the time columns masked in every lead")
    group.add_argument("--mask_time_span", type=int, help="patches per masked time span")
    group.add_argument("--siglip_duplicate_reports", choices=["positive", "negative"], default="positive",
                       help="SigLIP pairs of an ECG with another row's identical report: positives (ours) or negatives")
    group.add_argument("--cgdmer_local_vocab_size", type=int, default=2000, help="local WordPiece vocabulary")
    group.add_argument("--cgdmer_local_text_hidden_size", type=int, help="local BERT width (default: the size's)")
    group.add_argument("--cgdmer_local_text_layers", type=int, help="local BERT layers (default: the size's)")


def model_fields(args) -> dict:
    """CgdmerConfig fields of --model_preset (its variant at --model_size when given), with the command line's
    switches and masking options: a term is on when the preset has it on and no --no_<term> switches it off."""
    size, variant = PRESET_LAYOUT[args.model_preset]
    fields = {**SIZES[args.model_size or size], **VARIANTS[variant]}
    for term in LOSS_TERMS:
        fields[f"use_{term}"] = fields[f"use_{term}"] and not getattr(args, f"no_{term}")
    for name in ("patch_size", "mask_ratio", "mask_lead_ratio", "mask_time_ratio", "mask_time_span"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return fields


def check_arguments(args) -> None:
    for name in ("cgdmer_local_vocab_size", "cgdmer_local_text_hidden_size", "cgdmer_local_text_layers"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be positive, got {value}.")
    try:
        CgdmerConfig(**model_fields(args))
    except ValueError as error:
        raise ValueError(f"--model_preset {args.model_preset} with these options: {error}") from None


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer, model, processor


def train_tokenizer(reports: list[str], args):
    """The local BERT's WordPiece tokenizer (with `[MASK]`), trained on the corpus' reports."""
    from ..text import train_report_tokenizer

    return train_report_tokenizer(reports, vocab_size=args.cgdmer_local_vocab_size)


def make_processor(tokenizer, max_text_length: int) -> CgdmerProcessor:
    return CgdmerProcessor(TamerFeatureExtractor(normalization=FEATURE_NORMALIZATION), tokenizer, max_text_length)


def local_text_config(tokenizer, size: str, max_text_length: int, hidden_size: int | None = None,
                      layers: int | None = None):
    """The local BERT of `size` for `tokenizer` (trained with the model, so none of TAMER's bag-of-words surgery)."""
    from ..text import small_text_config

    default_hidden, default_layers, default_heads = LOCAL_TEXT_SIZES[size]
    hidden = hidden_size or default_hidden
    heads = default_heads if hidden % default_heads == 0 else 1
    return small_text_config(tokenizer, hidden_size=hidden, num_layers=layers or default_layers, num_heads=heads,
                             max_positions=max(max_text_length, 128))


def build(args, train_reports: list[str], tokenizer=None) -> tuple[CgdmerModel, CgdmerProcessor]:
    """A randomly initialised CG-DMER of `--model_preset`: its report encoder a pretrained BERT from `--text_encoder`
    (MedCPT in the paper set-up), or a small local BERT for `tokenizer` (trained on the reports when not given)."""
    fields = model_fields(args)
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        tokenizer = tokenizer if tokenizer is not None else train_tokenizer(train_reports, args)
        size = args.model_size or PRESET_LAYOUT[args.model_preset][0]
        text_config = local_text_config(tokenizer, size, args.max_text_length, args.cgdmer_local_text_hidden_size,
                                        args.cgdmer_local_text_layers)
        model = CgdmerModel(CgdmerConfig(text_config=text_config.to_dict(), mlm_mask_token_id=tokenizer.mask_token_id,
                                         **fields))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.text_encoder)
        model = CgdmerModel.from_text_pretrained(args.text_encoder, mlm_mask_token_id=tokenizer.mask_token_id, **fields)
    return model, make_processor(tokenizer, args.max_text_length)


# ----------------------------------------------------------------------------------------------------------------------
# Data collator


class CgdmerCollator:
    """Rows {ecg (12, T) mV, report_id} -> the model's inputs:

    1. `input_values` through the feature extractor (the transform of inference);
    2. `input_ids` / `attention_mask` of the reports, and `mlm_special_tokens_mask` (the tokens MLM never picks);
    3. with `duplicate_positives`, `report_ids`, so SigLIP counts identical reports as positives.

    It draws nothing at random: the model draws the spatio-temporal ECG mask and the MLM corruption in `forward`, from
    torch's global RNG. Accelerate's data loader collates one batch ahead of the step, so draws made here would be
    taken before the checkpoint of the previous step and a resumed run would repeat them differently.
    `draw_masks=True` draws them here instead (`ecg_mask`, `mlm_input_ids`, `mlm_labels`, same RNG, same
    functions), for use outside the training loop.
    """

    def __init__(self, processor: CgdmerProcessor, reports: list[str], sampling_rate: float, config: CgdmerConfig,
                 duplicate_positives: bool = True, draw_masks: bool = False):
        self.processor, self.reports, self.sampling_rate, self.config = processor, reports, sampling_rate, config
        self.duplicate_positives, self.draw_masks = duplicate_positives, draw_masks
        tokenizer = processor.tokenizer
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.mask_token_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)

    def __call__(self, rows: list[dict]) -> dict:
        cfg = self.config
        report_ids = torch.tensor([int(row["report_id"]) for row in rows])  # (B,)
        input_values = ecg_input_values(self.processor.feature_extractor, rows, self.sampling_rate)  # (B, 12, 5000)
        tokens = self.processor(text=[self.reports[i] for i in report_ids.tolist()])
        special = torch.isin(tokens["input_ids"], self.special_ids)  # (B, Lt)
        batch = {"input_values": input_values, "input_ids": tokens["input_ids"],
                 "attention_mask": tokens["attention_mask"], "mlm_special_tokens_mask": special}
        # the order of the model's own draws: the ECG mask, then the MLM corruption
        if self.draw_masks and cfg.use_ecg_reconstruction:
            batch["ecg_mask"] = spatiotemporal_mask(
                len(rows), cfg.num_leads, cfg.num_patches_per_lead, cfg.mask_ratio, cfg.mask_lead_ratio,
                cfg.mask_time_ratio, cfg.mask_time_span,
            ).mask  # (B, L * T)
        if self.draw_masks and cfg.use_mlm:
            batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens_for_mlm(
                tokens["input_ids"], self.mask_token_id, self.vocab_size, cfg.mlm_probability,
                special | (tokens["attention_mask"] == 0),
            )
        if self.duplicate_positives:
            batch["report_ids"] = report_ids
        return batch


def make_collator(args, model: CgdmerModel, processor: CgdmerProcessor, reports: list[str],
                  accelerator) -> CgdmerCollator:
    config = model.config
    accelerator.print(f"CG-DMER terms: {', '.join(config.enabled_losses)}; ECG patches {config.num_leads} leads x "
                      f"{config.num_patches_per_lead} (patch {config.patch_size} samples)")
    return CgdmerCollator(processor, reports, args.sampling_rate, config,
                          duplicate_positives=args.siglip_duplicate_reports == "positive")


FAMILY = ModelFamily(
    model_type=CgdmerConfig.model_type,
    paper="CG-DMER: hybrid contrastive-generative framework for disentangled multimodal ECG representation learning "
    "(arXiv 2602.21154, ICASSP 2026)",
    config_class=CgdmerConfig,
    model_class=CgdmerModel,
    processor_class=CgdmerProcessor,
    feature_extractor_class=TamerFeatureExtractor,
    presets=MODEL_PRESETS,
    loss_terms=LOSS_TERMS,
    build=build,
    make_collator=make_collator,
    train_tokenizer=train_tokenizer,
    quick_start_defaults=QUICK_START_DEFAULTS,
    paper_defaults=PAPER_DEFAULTS,
    add_arguments=add_arguments,
    check_arguments=check_arguments,
    # the fine-tuning head (examples/finetune.py); why this Auto class: TamerForECGClassification's docstring
    extra_auto_models={"AutoModelForAudioClassification": CgdmerForECGClassification},
)

__all__ = ["FAMILY", "CgdmerCollator", "LOCAL_TEXT_SIZES", "MODEL_PRESETS", "PRESET_LAYOUT", "SIZES", "VARIANTS",
           "build", "local_text_config", "make_collator", "make_processor", "model_fields", "train_tokenizer",
           "PAPER_TEXT_ENCODER", "LOCAL_TEXT_ENCODER"]

"""The C-MELT family for the pre-training loop: presets, the T5 text encoder (Flan-T5 or a local one), N3S negatives
and the masking data collator.

Paper defaults (C-MELT §4.1, fairseq-signals): Adam lr 5e-5, betas (0.9, 0.98), eps 1e-6, weight decay 0.01,
tri-stage schedule 0.1 / 0.4 / 0.5, 300k steps, batch 128 on one GPU, google/flan-t5-base trained with the model,
N3S negatives from google/flan-t5-small report embeddings. fairseq's `adam` applies weight decay decoupled from the
gradient ("Fixed Weight Decay Regularization in Adam", its docstring), which is torch's AdamW, hence `adamw` below.
With no `--dataset`, the offline quick start replaces them.
"""

from __future__ import annotations

import argparse
import math
import os

import torch

from ..modeling.configuration_cmelt import LOSS_TERMS, CmeltConfig
from ..modeling.ecg_masking import mask_tokens_for_mlm, random_lead_mask
from ..modeling.feature_extraction_tamer import TamerFeatureExtractor
from ..modeling.modeling_cmelt import CmeltForECGClassification, CmeltModel
from ..modeling.processing_cmelt import CmeltProcessor
from . import ModelFamily, ecg_input_values

PAPER_TEXT_ENCODER = "google/flan-t5-base"  # [paper §3.1]
PAPER_N3S_ENCODER = "google/flan-t5-small"  # [paper §3.2]
LOCAL_TEXT_ENCODER = "local"  # a Unigram tokenizer trained on the corpus' reports + a small T5 encoder
OWN_TEXT_ENCODER = "text_encoder"  # --n3s_encoder: the model's own text encoder as initialised (offline runs)
FEATURE_NORMALIZATION = "none"  # C-MELT code feeds raw amplitudes (mV); see CmeltProcessor

MODEL_PRESETS = {
    "cmelt-paper": {},  # every CmeltConfig default: the paper / code sizes
    # The offline quick start's model (2 CPU cores), sized and set for a short run:
    # - five convs make 156 tokens of 32 samples (64 ms); everything 64 wide; one fusion layer;
    # - SigLIP in SigLIP's own form (normalised, learnable scale and bias, sum / B) on a second, unmasked pass
    #   (siglip_unmasked_inputs), and mean-pooled unimodal features: rhythm and rate labels need every beat, which the
    #   code's one pass over 25 % of the tokens hides (zero-shot 0.77 -> 0.82 held-out macro-AUC at 800 steps);
    # - no random lead masking (0.5 in the paper): in 800 steps it costs 0.14 AUC (0.77 -> 0.63 at 400 steps).
    "cmelt-quick": dict(
        ecg_conv_dim=[32] * 5, ecg_conv_kernel=[2] * 5, ecg_conv_stride=[2] * 5, ecg_hidden_size=64,
        ecg_num_layers=2, ecg_num_heads=4, ecg_intermediate_size=128, ecg_conv_pos_kernel=16, ecg_conv_pos_groups=4,
        hidden_size=64, fusion_num_layers=1, fusion_num_heads=4, fusion_intermediate_size=128,
        mem_decoder_hidden_size=32, mem_decoder_num_layers=1, mem_decoder_num_heads=4, mem_layer=1,
        siglip_normalize=True, siglip_logit_scale_init=math.log(10), siglip_logit_bias_init=-10.0,
        siglip_learnable=True, siglip_reduction="sum", siglip_unmasked_inputs=True, unimodal_pooling="mean",
        lead_mask_prob=0.0,
    ),
    "cmelt-tiny": dict(  # tests
        ecg_conv_dim=[16] * 4, ecg_hidden_size=32, ecg_num_layers=1, ecg_num_heads=2, ecg_intermediate_size=64,
        ecg_conv_pos_kernel=16, ecg_conv_pos_groups=4, hidden_size=32, fusion_num_layers=2, fusion_num_heads=2,
        fusion_intermediate_size=64, mem_decoder_hidden_size=16, mem_decoder_num_layers=1, mem_decoder_num_heads=2,
        mem_layer=1,
    ),
}
# the local T5 encoder of each preset with --text_encoder local: (d_model, layers, heads)
LOCAL_TEXT_SIZES = {"cmelt-paper": (768, 12, 12), "cmelt-quick": (64, 2, 2), "cmelt-tiny": (32, 1, 2)}

PAPER_DEFAULTS = dict(
    model_preset="cmelt-paper", text_encoder=PAPER_TEXT_ENCODER, optimizer="adamw", learning_rate=5e-5,
    adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01, lr_scheduler="tri_stage",
    tri_stage_ratios=[0.1, 0.4, 0.5], max_steps=300_000, global_batch_size=128, max_text_length=256,
    precise_bn_batches=0, eval_steps=2000, checkpointing_steps=2000, logging_steps=50,
    siglip_duplicate_reports="negative",
)
QUICK_START_DEFAULTS = dict(
    model_preset="cmelt-quick", text_encoder=LOCAL_TEXT_ENCODER, optimizer="adamw", learning_rate=1e-3,
    adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01, lr_scheduler="cosine", warmup_steps=50,
    max_steps=800, global_batch_size=32, max_text_length=128, precise_bn_batches=0, eval_steps=200,
    checkpointing_steps=200, logging_steps=10,
    siglip_duplicate_reports="positive",
)


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("C-MELT")
    group.add_argument("--negatives", choices=["n3s", "random"], default="n3s",
                       help="reports swapped in as ETM/SigLIP negatives: the least similar of the N3S embeddings "
                       "(paper) or uniformly random (the paper's ablation)")
    group.add_argument("--n3s_encoder", help="encoder of the N3S report embeddings: a Hub id / folder, or "
                       f"'{OWN_TEXT_ENCODER}' (the model's own text encoder as initialised); default: "
                       f"{PAPER_N3S_ENCODER} (paper), '{OWN_TEXT_ENCODER}' with --text_encoder {LOCAL_TEXT_ENCODER} "
                       "(offline)")
    group.add_argument("--n3s_k", type=int, default=64, help="a negative is drawn from the k least similar reports")
    group.add_argument("--n3s_negative_fraction", type=float, default=0.5, help="share of each batch swapped")
    group.add_argument("--n3s_backend", choices=["auto", "faiss", "exact"], default="auto")
    group.add_argument("--siglip_duplicate_reports", choices=["negative", "positive"],
                       help="SigLIP pairs of an ECG with another row's identical report: negatives (code) or positives")
    group.add_argument("--cmelt_local_vocab_size", type=int, default=1000, help="local Unigram tokenizer vocabulary")
    group.add_argument("--cmelt_local_text_hidden_size", type=int, help="local T5 d_model (default: the preset's)")
    group.add_argument("--cmelt_local_text_layers", type=int, help="local T5 layers (default: the preset's)")


def check_arguments(args) -> None:
    """Check the C-MELT options and fill `--n3s_encoder`: with a local text encoder the run stays offline."""
    if args.n3s_encoder is None:
        args.n3s_encoder = OWN_TEXT_ENCODER if args.text_encoder == LOCAL_TEXT_ENCODER else PAPER_N3S_ENCODER
    if args.n3s_k < 1:
        raise ValueError(f"--n3s_k must be at least 1, got {args.n3s_k}.")
    if not 0 <= args.n3s_negative_fraction <= 1:
        raise ValueError(f"--n3s_negative_fraction must lie in [0, 1], got {args.n3s_negative_fraction}.")
    for name in ("cmelt_local_vocab_size", "cmelt_local_text_hidden_size", "cmelt_local_text_layers"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be positive, got {value}.")


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer, model, processor


def train_tokenizer(reports: list[str], args):
    """The local T5 encoder's Unigram tokenizer, trained on the corpus' reports (mask token `<extra_id_0>`)."""
    from ..text import train_t5_tokenizer

    return train_t5_tokenizer(reports, vocab_size=args.cmelt_local_vocab_size)


def ensure_mask_token(tokenizer):
    """T5 tokenizers have no mask token; MLM uses the first sentinel (documented divergence from BERT-style MLM)."""
    from ..text import T5_MASK_TOKEN

    if tokenizer.mask_token is None:
        tokenizer.mask_token = T5_MASK_TOKEN
    return tokenizer


def make_processor(tokenizer, max_text_length: int) -> CmeltProcessor:
    return CmeltProcessor(TamerFeatureExtractor(normalization=FEATURE_NORMALIZATION), tokenizer, max_text_length)


def build(args, train_reports: list[str], tokenizer=None) -> tuple[CmeltModel, CmeltProcessor]:
    """A randomly initialised C-MELT of `--model_preset`: its text encoder Flan-T5 from `--text_encoder`, or a small
    local T5 for `tokenizer` (trained on the reports when not given)."""
    overrides = dict(MODEL_PRESETS[args.model_preset])
    for term in LOSS_TERMS:
        overrides[f"use_{term}"] = not getattr(args, f"no_{term}")
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        from ..text import small_t5_config

        tokenizer = tokenizer if tokenizer is not None else train_tokenizer(train_reports, args)
        d_model, layers, heads = LOCAL_TEXT_SIZES[args.model_preset]
        if args.cmelt_local_text_hidden_size:
            d_model, heads = args.cmelt_local_text_hidden_size, max(1, args.cmelt_local_text_hidden_size // 32)
        layers = args.cmelt_local_text_layers or layers
        text_config = small_t5_config(tokenizer, d_model=d_model, num_layers=layers, num_heads=heads)
        model = CmeltModel(CmeltConfig(text_config=text_config.to_dict(), **overrides))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.text_encoder)
        model = CmeltModel.from_text_pretrained(args.text_encoder, **overrides)
    return model, make_processor(ensure_mask_token(tokenizer), args.max_text_length)


# ----------------------------------------------------------------------------------------------------------------------
# Data collator


class CmeltCollator:
    """Rows {ecg (12, T) mV, report_id} -> the model's inputs, every random choice from torch's global RNG:

    1. `input_values` through the feature extractor (the transform of inference), then random lead masking;
    2. N3S: about half of the reports swapped for negatives (`is_aligned` = 0), the swap before the masking;
    3. `input_ids` / `attention_mask` of the swapped-in reports, and their MLM corruption `mlm_input_ids` /
       `mlm_labels` (80 / 10 / 10 with the tokenizer's mask token);
    4. `mem_noise` choosing the ECG tokens MEM hides;
    5. with `duplicate_positives`, `report_ids` / `text_report_ids` so SigLIP counts identical reports as positives.
    """

    def __init__(self, processor: CmeltProcessor, reports: list[str], sampling_rate: float, config: CmeltConfig,
                 num_ecg_tokens: int, sampler=None, duplicate_positives: bool = False):
        self.processor, self.reports, self.sampling_rate, self.config = processor, reports, sampling_rate, config
        self.num_ecg_tokens, self.sampler, self.duplicate_positives = num_ecg_tokens, sampler, duplicate_positives
        tokenizer = processor.tokenizer
        self.mask_token_id = tokenizer.mask_token_id
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.vocab_size = len(tokenizer)

    def __call__(self, rows: list[dict]) -> dict:
        cfg = self.config
        report_ids = torch.tensor([int(row["report_id"]) for row in rows])  # (B,)
        input_values = ecg_input_values(self.processor.feature_extractor, rows, self.sampling_rate)  # (B, 12, 5000)
        input_values, _ = random_lead_mask(input_values, cfg.lead_mask_prob)
        if self.sampler is not None:
            text_report_ids, is_aligned = self.sampler(report_ids)
        else:
            text_report_ids, is_aligned = report_ids, torch.ones_like(report_ids)
        tokens = self.processor(text=[self.reports[i] for i in text_report_ids.tolist()])
        batch = {"input_values": input_values, "input_ids": tokens["input_ids"],
                 "attention_mask": tokens["attention_mask"], "is_aligned": is_aligned}
        if cfg.use_mlm:
            special = torch.isin(tokens["input_ids"], self.special_ids) | (tokens["attention_mask"] == 0)
            batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens_for_mlm(
                tokens["input_ids"], self.mask_token_id, self.vocab_size, cfg.mlm_probability, special
            )
        if cfg.use_mem:
            batch["mem_noise"] = torch.rand(len(rows), self.num_ecg_tokens)  # (B, L)
        if self.duplicate_positives:
            batch["report_ids"], batch["text_report_ids"] = report_ids, text_report_ids
        return batch


def make_negative_sampler(args, model: CmeltModel, processor: CmeltProcessor, reports: list[str], accelerator):
    """N3S over the unique reports: embeddings computed once (main process first) and cached under output_dir."""
    from ..n3s import NegativeSampler, NeighbourIndex, cached_report_embeddings

    if args.n3s_encoder == OWN_TEXT_ENCODER:
        encoder, tokenizer = model.text_model, processor.tokenizer
    else:
        encoder, tokenizer = args.n3s_encoder, None
    with accelerator.main_process_first():
        embeddings = cached_report_embeddings(
            reports, encoder, os.path.join(args.output_dir, "n3s_cache"), tokenizer=tokenizer,
            max_length=args.max_text_length, device=accelerator.device,
        )
    index = NeighbourIndex(embeddings, backend=args.n3s_backend)
    return NegativeSampler(index, k=args.n3s_k, negative_fraction=args.n3s_negative_fraction, mode=args.negatives)


def make_collator(args, model: CmeltModel, processor: CmeltProcessor, reports: list[str], accelerator) -> CmeltCollator:
    config = model.config
    sampler = None
    if config.use_etm or config.use_siglip:
        sampler = make_negative_sampler(args, model, processor, reports, accelerator)
    accelerator.print(f"C-MELT negatives: {args.negatives}"
                      + (f" (k={args.n3s_k}, embeddings: {args.n3s_encoder})" if args.negatives == "n3s" else ""))
    return CmeltCollator(processor, reports, args.sampling_rate, config, model.num_ecg_tokens, sampler,
                         duplicate_positives=args.siglip_duplicate_reports == "positive")


FAMILY = ModelFamily(
    model_type=CmeltConfig.model_type,
    paper="C-MELT: contrastive enhanced masked auto-encoders for ECG-language pre-training (Pham et al., "
    "arXiv 2410.02131)",
    config_class=CmeltConfig,
    model_class=CmeltModel,
    processor_class=CmeltProcessor,
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
    extra_auto_models={"AutoModelForAudioClassification": CmeltForECGClassification},
)

__all__ = ["FAMILY", "CmeltCollator", "MODEL_PRESETS", "build", "make_collator", "make_processor", "train_tokenizer",
           "PAPER_TEXT_ENCODER", "PAPER_N3S_ENCODER", "LOCAL_TEXT_ENCODER"]

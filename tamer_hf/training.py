"""TAMER pre-training with Accelerate: arguments, data, model, loss step, trackers, validation, checkpoints.

`examples/pretrain.py` reads top to bottom through `pretrain(args)`; the pieces it uses live here:

    corpus (DatasetDict: ecg mV + report [+ labels]) ──► PretrainCollator (feature extractor, tokenizer / report ids)
        ──► training_loss (TamerModel forward with gather_with_grad, optional duplicate-report masking)
        ──► AdamW + CosineAnnealingWarmRestarts stepped per optimizer step ──► save_state / zero-shot validation
        ──► save_pretrained (model, processor, pipeline) + model card

Paper defaults (TAMER §4): AdamW lr 2e-4, weight decay 1e-7, CosineAnnealingWarmRestarts T_0 = 40000 steps, batch 256,
50 epochs. With no `--dataset`, a quick start on the synthetic corpus replaces the batch/steps/size defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .distributed import gather_with_grad, is_distributed
from .modeling.configuration_tamer import LOSS_TERMS
from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.modeling_tamer import TamerModel, TamerTextEncoding
from .modeling.pipeline_tamer import check_template
from .modeling.processing_tamer import TamerProcessor
from .presets import MODEL_PRESETS, preset_config

PAPER_TEXT_ENCODER = "ncbi/MedCPT-Query-Encoder"
LOCAL_TEXT_ENCODER = "local"  # a WordPiece tokenizer trained on the corpus' reports + a small frozen BERT

# Defaults of a real run (TAMER paper) and of the offline quick start (no --dataset); explicit arguments win over both.
PAPER_DEFAULTS = dict(
    model_preset="paper", text_encoder=PAPER_TEXT_ENCODER, batch_size=256, num_train_epochs=50, max_steps=None,
    learning_rate=2e-4, scheduler_t0=40000,
    cache_text_features="auto", mask_duplicate_reports=False, eval_steps=2000, checkpointing_steps=2000,
    logging_steps=50, precise_bn_batches=50,
)
QUICK_START_DEFAULTS = dict(
    model_preset="quick", text_encoder=LOCAL_TEXT_ENCODER, batch_size=32, num_train_epochs=None, max_steps=800,
    learning_rate=1e-3,  # a short run on a small corpus; the paper's 2e-4 is for batch 256 x 50 epochs of MIMIC
    scheduler_t0=None,  # one cosine cycle over the whole run (the learning rate ends near 0)
    cache_text_features="auto", mask_duplicate_reports=True, eval_steps=200, checkpointing_steps=200,
    logging_steps=10, precise_bn_batches=16,
)
QUICK_START_RECORDS = 4000  # synthetic records generated in-process (~80 % train, 10 % validation, 10 % test)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments


class InputError(ValueError):
    """Bad user input (arguments, dataset): the CLI prints its message as one line instead of a traceback."""


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="TAMER tri-modal contrastive pre-training (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="save_to_disk folder, Parquet file/folder or Hub id with `ecg` and `report` "
                      "columns (datasets_scripts output). Omitted: an in-process synthetic corpus (quick start).")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", default="validation",
                      help="labelled split for periodic zero-shot validation (skipped when absent or unlabelled)")
    data.add_argument("--test_split", default="test", help="labelled split scored once at the end (when present)")
    data.add_argument("--ecg_column", default="ecg")
    data.add_argument("--report_column", default="report")
    data.add_argument("--sampling_rate", type=float, default=500.0, help="Hz of the ECG column (datasets_scripts: 500)")
    data.add_argument("--synthetic_records", type=int, default=QUICK_START_RECORDS)
    data.add_argument("--max_train_samples", type=int, help="use only the first N training records")
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = p.add_argument_group("model")
    model.add_argument("--model_preset", choices=sorted(MODEL_PRESETS), help="paper | small | tiny")
    model.add_argument("--text_encoder", help=f"frozen report encoder: a BERT checkpoint (paper: {PAPER_TEXT_ENCODER}) "
                       f"or '{LOCAL_TEXT_ENCODER}' (tokenizer trained on the reports + small BERT; offline)")
    model.add_argument("--local_text_hidden_size", type=int, default=256)
    model.add_argument("--local_text_layers", type=int, default=1)
    model.add_argument("--local_text_init_range", type=float, default=0.02, help="std of the local encoder's weights")
    model.add_argument("--local_vocab_size", type=int, default=2000)
    model.add_argument("--tokenizer", help="local text encoder: a saved tokenizer (folder or Hub id) instead of training "
                       "one on the reports (WordPiece training is not bit-reproducible from run to run)")
    model.add_argument("--max_text_length", type=int, default=256, help="report tokens (MERL: 256)")
    for term in LOSS_TERMS:
        model.add_argument(f"--no_{term}", action="store_true", help=f"switch the {term.upper()} loss term off")
    model.add_argument("--temperature", type=float, help="one InfoNCE temperature for every term (paper: 0.04)")
    model.add_argument("--sync_batchnorm", action="store_true", help="SyncBatchNorm across GPUs (not on CPU)")

    train = p.add_argument_group("training")
    train.add_argument("--output_dir", default="runs/tamer-quickstart")
    train.add_argument("--batch_size", type=int, help="ECG-report pairs per process per micro-step (paper: 256)")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="micro-steps per optimizer step (does not add contrastive negatives)")
    train.add_argument("--num_train_epochs", type=float)
    train.add_argument("--max_steps", type=int, help="optimizer steps; overrides --num_train_epochs")
    train.add_argument("--learning_rate", type=float, help="AdamW learning rate (paper: 2e-4)")
    train.add_argument("--weight_decay", type=float, default=1e-7)
    train.add_argument("--scheduler_t0", type=int,
                       help="CosineAnnealingWarmRestarts T_0 in optimizer steps (paper: 40000; quick start: the run's "
                       "length)")
    train.add_argument("--max_grad_norm", type=float, default=0.0, help="clip gradients (0: off, as the paper)")
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"],
                       help="default: what `accelerate config` / `accelerate launch` says")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--precise_bn_batches", type=int,
                       help="before each validation and the final save, recompute the BatchNorm statistics as the "
                       "plain average over this many training batches (0: keep the running averages)")
    train.add_argument("--cache_text_features", choices=["auto", "always", "never"],
                       help="encode each unique report once with the frozen encoder (auto: when it fits "
                       "--text_cache_max_gb)")
    train.add_argument("--text_cache_max_gb", type=float, default=8.0)
    train.add_argument("--mask_duplicate_reports", action=argparse.BooleanOptionalAction,
                       help="in RADA, do not count another pair with the identical report as a negative")

    track = p.add_argument_group("checkpoints, logging, validation")
    track.add_argument("--checkpointing_steps", type=int, help="save_state every N optimizer steps (0: never)")
    track.add_argument("--checkpoints_total_limit", type=int, default=3)
    track.add_argument("--resume_from_checkpoint", help="'latest' or a checkpoint folder")
    track.add_argument("--logging_steps", type=int)
    track.add_argument("--eval_steps", type=int, help="zero-shot validation every N steps (0: never)")
    track.add_argument("--max_eval_samples", type=int, default=1000)
    track.add_argument("--zero_shot_prompts", choices=["name", "description"], default="name",
                       help="label prompt: clinical name, or the packaged clinical description")
    track.add_argument("--zero_shot_template", default="{}.",
                       help="formats each label prompt; '{}.' writes it as a report sentence (as the reports are), "
                       "the pipeline's hypothesis_template")
    track.add_argument("--report_to", default="jsonl,tensorboard", help="comma list of jsonl, tensorboard; or none")
    track.add_argument("--project_name", default="tamer-pretraining")
    track.add_argument("--save_every_loss", help=argparse.SUPPRESS)  # tests: JSONL of every step's loss
    track.add_argument("--simulate_kill_at_step", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL after step N
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return resolve_args(build_arg_parser().parse_args(argv))


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset options from the paper or quick-start defaults, then check values (clear errors at the boundary)."""
    defaults = QUICK_START_DEFAULTS if args.dataset is None else PAPER_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_steps is None and args.num_train_epochs is None:
        args.num_train_epochs = PAPER_DEFAULTS["num_train_epochs"]
    positive = ["batch_size", "gradient_accumulation_steps", "scheduler_t0", "max_text_length", "synthetic_records",
                "max_eval_samples"]
    non_negative = ["checkpointing_steps", "eval_steps", "logging_steps", "dataloader_num_workers", "weight_decay",
                    "max_grad_norm", "checkpoints_total_limit", "precise_bn_batches"]
    for name in positive:
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise InputError(f"--{name} must be positive, got {getattr(args, name)}.")
    for name in non_negative:
        if getattr(args, name) < 0:
            raise InputError(f"--{name} must not be negative, got {getattr(args, name)}.")
    if args.max_steps is not None and args.max_steps <= 0:
        raise InputError(f"--max_steps must be positive, got {args.max_steps}.")
    if args.scheduler_t0 is None:  # quick start: one cosine cycle over the run
        args.scheduler_t0 = args.max_steps or PAPER_DEFAULTS["scheduler_t0"]
    if args.num_train_epochs is not None and args.num_train_epochs <= 0:
        raise InputError(f"--num_train_epochs must be positive, got {args.num_train_epochs}.")
    if args.max_train_samples is not None and args.max_train_samples <= 0:
        raise InputError(f"--max_train_samples must be positive, got {args.max_train_samples}.")
    if not args.learning_rate > 0:
        raise InputError(f"--learning_rate must be positive, got {args.learning_rate}.")
    if all(getattr(args, f"no_{term}") for term in LOSS_TERMS):
        raise InputError("every loss term is switched off (--no_rlca --no_uecr --no_rada --no_rgwr); keep at least one.")
    if args.temperature is not None and args.temperature <= 0:
        raise InputError(f"--temperature must be positive, got {args.temperature}.")
    try:
        check_template(args.zero_shot_template, "--zero_shot_template")
    except ValueError as error:
        raise InputError(str(error)) from None
    unknown = {name.strip() for name in args.report_to.split(",")} - {"jsonl", "tensorboard", "none", ""}
    if unknown:
        raise InputError(f"--report_to: unknown tracker(s) {sorted(unknown)}; use jsonl, tensorboard or none.")
    return args


# ----------------------------------------------------------------------------------------------------------------------
# Data


def load_corpus(args):
    """The pre-training corpus as a DatasetDict whose `ecg` (mV) and `report` columns are checked.

    No `--dataset`: the synthetic corpus of `datasets_scripts.synthetic`, generated in memory.
    """
    import datasets

    if args.dataset is None:
        from datasets_scripts import synthetic

        return synthetic.generate(num_records=args.synthetic_records, seed=args.seed)
    path = args.dataset
    if os.path.isdir(path) and (os.path.isfile(os.path.join(path, "dataset_dict.json"))
                                or os.path.isfile(os.path.join(path, "state.json"))):
        corpus = datasets.load_from_disk(path)
    elif path.endswith(".parquet") and os.path.isfile(path):
        corpus = datasets.load_dataset("parquet", data_files={args.train_split: path})
    elif os.path.isdir(path) and any(name.endswith(".parquet") for name in os.listdir(path)):
        files = sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".parquet"))
        corpus = datasets.load_dataset("parquet", data_files={args.train_split: files})
    elif os.path.exists(path):
        raise InputError(f"--dataset {path!r}: not a save_to_disk folder, a .parquet file or a folder of .parquet files.")
    else:
        try:
            corpus = datasets.load_dataset(path)  # a Hub id
        except Exception as error:  # noqa: BLE001 - say which argument was wrong, keep the cause
            raise FileNotFoundError(f"--dataset {path!r}: no such local path, and loading it as a Hub dataset failed "
                                    f"({type(error).__name__}: {error}).") from error
    if isinstance(corpus, datasets.Dataset):
        corpus = datasets.DatasetDict({args.train_split: corpus})
    if args.train_split not in corpus:
        raise InputError(f"--dataset {path!r} has no split {args.train_split!r} (splits: {sorted(corpus)}).")
    for column in (args.ecg_column, args.report_column):
        if column not in corpus[args.train_split].column_names:
            raise InputError(
                f"--dataset {path!r}: the {args.train_split!r} split has no column {column!r} "
                f"(columns: {corpus[args.train_split].column_names}); pass --ecg_column / --report_column."
            )
    renames = {args.ecg_column: "ecg", args.report_column: "report"}
    renames = {old: new for old, new in renames.items() if old != new}
    return corpus.rename_columns(renames) if renames else corpus


@dataclass
class ReportTable:
    """Unique reports and, per training row, the index of its report (identical text = identical index)."""

    reports: list[str]
    row_report_ids: np.ndarray  # (num_rows,)

    @classmethod
    def from_reports(cls, row_reports) -> "ReportTable":
        index: dict[str, int] = {}
        ids = np.fromiter((index.setdefault(str(r), len(index)) for r in row_reports), dtype=np.int64)
        if len(ids) and any(not text.strip() for text in index):
            raise InputError("the training split has empty reports; drop them first (datasets_scripts does).")
        return cls(list(index), ids)


class TextFeatureCache:
    """Frozen report-encoder outputs for every unique report, computed once (the encoder never changes).

    Stored trimmed to each report's length in one flat tensor: words (sum of lengths, H), pooled (R, H), weights.
    `lookup(ids)` pads a batch back into a `TamerTextEncoding` plus its attention mask, which `TamerModel.forward`
    accepts instead of `input_ids`.
    """

    def __init__(self, model: TamerModel, tokenizer, reports: list[str], max_length: int, batch_size: int = 256,
                 dtype: torch.dtype = torch.float32):
        device = next(model.parameters()).device
        words, pooled, weights, lengths = [], [], [], []
        for start in range(0, len(reports), batch_size):
            tokens = tokenizer(reports[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt").to(device)
            encoding = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
            for row, length in enumerate(tokens["attention_mask"].sum(dim=1).tolist()):
                words.append(encoding.last_hidden_state[row, :length].to("cpu", dtype))
                weights.append(encoding.word_weights[row, :length].to("cpu", dtype))
                lengths.append(length)
            pooled.append(encoding.pooled.to("cpu", dtype))
        self.words = torch.cat(words)  # (sum L, H)
        self.weights = torch.cat(weights)  # (sum L,)
        self.pooled = torch.cat(pooled)  # (R, H)
        self.lengths = torch.tensor(lengths)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths

    @staticmethod
    def estimated_gb(tokenizer, reports: list[str], hidden_size: int, max_length: int, sample: int = 2000) -> float:
        """float32 size of the cache, from the mean token count of a sample of the reports."""
        picked = reports[:: max(1, len(reports) // sample)]
        lengths = [min(len(ids), max_length) for ids in tokenizer(picked)["input_ids"]] or [0]
        return len(reports) * (float(np.mean(lengths)) + 1) * (hidden_size + 1) * 4 / 1e9

    def lookup(self, report_ids: torch.Tensor, device) -> tuple[TamerTextEncoding, torch.Tensor]:
        ids = report_ids.cpu()
        lengths = self.lengths[ids]
        batch, longest, hidden = len(ids), int(lengths.max()), self.words.shape[1]
        words = self.words.new_zeros(batch, longest, hidden)  # (B, L, H)
        weights = self.weights.new_zeros(batch, longest)  # (B, L)
        for row, (offset, length) in enumerate(zip(self.offsets[ids].tolist(), lengths.tolist())):
            words[row, :length] = self.words[offset:offset + length]
            weights[row, :length] = self.weights[offset:offset + length]
        attention_mask = (torch.arange(longest)[None, :] < lengths[:, None]).long()  # (B, L)
        encoding = TamerTextEncoding(last_hidden_state=words.to(device), pooled=self.pooled[ids].to(device),
                                     word_weights=weights.to(device))
        return encoding, attention_mask.to(device)


class PretrainCollator:
    """Rows {ecg (12, T) mV, report_id} -> input_values (B, 12, 5000) through the feature extractor (the same
    transform as inference) + report ids, and tokenised reports when the text features are not cached."""

    def __init__(self, processor: TamerProcessor, reports: list[str], sampling_rate: float, tokenize: bool):
        self.processor, self.reports, self.sampling_rate, self.tokenize = processor, reports, sampling_rate, tokenize

    def __call__(self, rows: list[dict]) -> dict:
        report_ids = torch.tensor([int(row["report_id"]) for row in rows])
        ecgs = [np.asarray(row["ecg"], dtype=np.float32) for row in rows]
        if len({ecg.shape for ecg in ecgs}) == 1:
            ecgs = np.stack(ecgs)  # (B, 12, T): one vectorised feature-extractor call
        batch = {"input_values": self.processor.feature_extractor(
            ecgs, sampling_rate=self.sampling_rate, return_tensors="pt")["input_values"], "report_ids": report_ids}
        if self.tokenize:
            tokens = self.processor(text=[self.reports[i] for i in report_ids.tolist()])
            batch.update(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return batch


# ----------------------------------------------------------------------------------------------------------------------
# Model


def build_model_and_processor(args, train_reports: list[str], tokenizer=None) -> tuple[TamerModel, TamerProcessor]:
    """A randomly initialised TAMER of `--model_preset` with a frozen report encoder and the matching processor.

    `tokenizer` (local text encoder only): reuse one already trained (see `shared_report_tokenizer`).
    """
    overrides = dict(MODEL_PRESETS[args.model_preset])
    for term in LOSS_TERMS:
        overrides[f"use_{term}"] = not getattr(args, f"no_{term}")
        if args.temperature is not None:
            overrides[f"{term}_temperature"] = args.temperature
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        from .text import small_text_config, train_report_tokenizer

        if tokenizer is None:
            tokenizer = train_report_tokenizer(train_reports, vocab_size=args.local_vocab_size)
        text_config = small_text_config(tokenizer, hidden_size=args.local_text_hidden_size,
                                        num_layers=args.local_text_layers, num_heads=max(1, args.local_text_hidden_size // 32),
                                        max_positions=max(args.max_text_length, 128))
        text_config.initializer_range = args.local_text_init_range
        model = TamerModel(preset_config(args.model_preset, text_config=text_config.to_dict(), **{
            k: v for k, v in overrides.items() if k not in MODEL_PRESETS[args.model_preset]}))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.text_encoder)
        model = TamerModel.from_text_pretrained(args.text_encoder, **overrides)
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        make_bag_of_words_encoder(model.text_model, tokenizer)
    if not model.config.use_rada:
        # Only RADA trains the report projection; frozen, DDP does not wait for its gradient (hf_conventions pitfall 26).
        model.text_projection.requires_grad_(False)
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer, max_text_length=args.max_text_length)
    return model, processor


@torch.no_grad()
def make_bag_of_words_encoder(text_model, tokenizer) -> None:
    """Turn the random local BERT into a random-projection bag-of-words sentence encoder.

    In a randomly initialised BERT the [CLS] output is dominated by the [CLS], position and segment embeddings, so
    every report gets almost the same feature (cosine 0.9999 between "atrial fibrillation." and "sinus rhythm.") and
    RADA has nothing to align. With those three embeddings zeroed, [CLS] attends (near-uniformly) over the words and
    its output is a random projection of the report's words: distinct reports get distinct features, and a label
    prompt lands near the reports that contain its words. The encoder stays frozen; this only replaces a pretrained
    encoder (MedCPT) where none can be downloaded.
    """
    embeddings = text_model.embeddings
    embeddings.position_embeddings.weight.zero_()
    embeddings.token_type_embeddings.weight.zero_()
    embeddings.word_embeddings.weight[tokenizer.cls_token_id].zero_()


def shared_report_tokenizer(accelerator, reports: list[str], vocab_size: int):
    """Train the offline report tokenizer once, on the main process, and give every process the same vocabulary.

    WordPiece training (tokenizers' trainer) is not deterministic from run to run: processes that trained their own
    would map the same report to different ids under one (broadcast) set of weights.
    """
    from accelerate.utils import broadcast_object_list
    from transformers import BertTokenizer

    from .text import train_report_tokenizer

    vocab = [train_report_tokenizer(reports, vocab_size=vocab_size).get_vocab() if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(vocab)
    return BertTokenizer(vocab=vocab[0], do_lower_case=True)


# ----------------------------------------------------------------------------------------------------------------------
# BatchNorm statistics


def precise_bn_batches(train_set, collator, batch_size: int, num_batches: int):
    """The first `num_batches` full batches of the training split in stored order: the same rows in every process and
    at every call, so recomputed statistics are identical across processes and after a resume."""
    rows = min(num_batches * batch_size, len(train_set))
    for start in range(0, rows - batch_size + 1, batch_size):
        yield collator([train_set[index] for index in range(start, start + batch_size)])["input_values"]


@torch.no_grad()
def recompute_batchnorm_statistics(model: TamerModel, batches) -> int:
    """Replace the BatchNorm running averages by the plain average of the batch statistics over `batches` (PreciseBN).

    The running averages (momentum 0.1) mix statistics of the last few dozen steps' weights; while the weights still
    move fast (short runs, high learning rates) they no longer match the final weights, and eval-mode embeddings
    drift away from the training-mode ones. Training losses never use the running averages, so this changes only
    evaluation and the saved model. Returns the number of batches used.
    """
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    device = next(model.parameters()).device
    was_training, momenta = model.training, [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    model.train()
    used = 0
    try:
        for input_values in batches:
            model.encode_ecg(input_values.to(device))
            used += 1
    finally:  # momentum and mode as they were, even if a batch fails
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    return used


# ----------------------------------------------------------------------------------------------------------------------
# The loss of one micro-batch


def training_loss(model, config, batch: dict, text_cache: TextFeatureCache | None = None, gather=None,
                  mask_duplicate_reports: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one micro-batch and its components (floats, for logging).

    `model` may be DDP-wrapped; `config` is the unwrapped model's config. With `gather` the contrastive terms use the
    global batch of every process.
    """
    inputs = {"input_values": batch["input_values"], "return_loss": True, "gather": gather}
    if text_cache is not None:
        inputs["text_encoding"], inputs["attention_mask"] = text_cache.lookup(batch["report_ids"],
                                                                              batch["input_values"].device)
    else:
        inputs["input_ids"], inputs["attention_mask"] = batch["input_ids"], batch["attention_mask"]
    if mask_duplicate_reports:
        inputs["report_ids"] = batch["report_ids"]  # identical reports are not RADA negatives of each other
    outputs = model(**inputs)
    parts = {term: getattr(outputs, f"loss_{term}") for term in LOSS_TERMS}
    loss = outputs.loss
    return loss, {term: value.item() for term, value in parts.items() if value is not None}


# ----------------------------------------------------------------------------------------------------------------------
# Trackers


def jsonl_tracker_class():
    from accelerate.tracking import GeneralTracker, on_main_process

    class JSONLTracker(GeneralTracker):
        """One JSON object per `accelerator.log` call, appended to `<logging_dir>/<run>/metrics.jsonl`."""

        name = "jsonl"
        requires_logging_directory = False

        def __init__(self, run_name: str, logging_dir: str):
            # No @on_main_process here: that would create accelerate's PartialState before the Accelerator, without
            # ACCELERATE_USE_CPU, and a CPU multi-process launch would silently become N single-process runs.
            super().__init__()
            self.path = os.path.join(logging_dir, run_name, "metrics.jsonl")
            self.file = None

        @property
        def tracker(self):
            return self.file

        def _write(self, record: dict):
            if self.file is None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(json.dumps(record, default=str) + "\n")
            self.file.flush()

        @on_main_process
        def store_init_configuration(self, values: dict):
            self._write({"config": values})

        @on_main_process
        def log(self, values: dict, step: int | None = None, **kwargs):
            self._write({"step": step, **values, "time": time.time()})

        @on_main_process
        def finish(self):
            if self.file is not None:
                self.file.close()

    return JSONLTracker


def make_trackers(args) -> list:
    names = [name.strip() for name in args.report_to.split(",") if name.strip() not in ("", "none")]
    trackers = []
    for name in names:
        if name == "jsonl":
            trackers.append(jsonl_tracker_class()(args.project_name, os.path.join(args.output_dir, "logs")))
        elif name == "tensorboard":
            trackers.append("tensorboard")
    return trackers


# ----------------------------------------------------------------------------------------------------------------------
# Zero-shot validation (metrics from tamer_hf.evaluation)


def has_labels(dataset) -> bool:
    if dataset is None or "labels" not in dataset.column_names:
        return False
    try:
        from datasets_scripts import label_names

        return len(label_names(dataset)) > 0
    except ValueError:
        return False


@torch.no_grad()
def zero_shot_auc(model: TamerModel, processor: TamerProcessor, dataset, sampling_rate: float = 500.0,
                  max_samples: int | None = None, prompts: str = "name", template: str = "{}.") -> dict:
    """Macro-AUC of cosine(ECG, label prompt) on a labelled split.

    `prompts="name"`: each label's clinical name ("atrial fibrillation", the packaged description up to its colon);
    `"description"`: the whole packaged description. Unknown labels are prompted by their code. `template` formats
    each prompt (the pipeline's `hypothesis_template`): "{}." makes it a sentence like those of the reports.
    """
    from datasets_scripts import label_names

    from .evaluation import (cosine_scores, embed_ecgs, embed_prompts, label_set_of, load_label_descriptions,
                             make_prompts, per_class_auc)

    if max_samples is not None and len(dataset) > max_samples:
        dataset = dataset.select(range(max_samples))
    names = label_names(dataset)
    label_set = label_set_of(dataset)
    try:
        descriptions = load_label_descriptions(label_set) if label_set else {}
    except ValueError:
        descriptions = {}
    if prompts == "name":
        descriptions = {label: text.split(":")[0] for label, text in descriptions.items()}
    was_training = model.training
    model.eval()
    columns = dataset.with_format("numpy", columns=["ecg", "labels"])
    ecg_embeds = embed_ecgs(model, processor.feature_extractor, columns["ecg"], sampling_rate=int(sampling_rate))
    prompt_embeds = embed_prompts(model, processor.tokenizer, make_prompts(names, template, descriptions))
    model.train(was_training)
    result = per_class_auc(np.asarray(columns["labels"]), cosine_scores(ecg_embeds, prompt_embeds), names)
    result["num_records"] = len(dataset)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints


CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, "checkpoints", f"step_{step}")


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name)) for name in os.listdir(root)
             if (m := CHECKPOINT_PATTERN.match(name)) and os.path.isfile(os.path.join(root, name, "trainer_state.json"))]
    return sorted(found)


def resolve_checkpoint(output_dir: str, resume_from: str) -> str:
    if resume_from == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no checkpoint under {output_dir}/checkpoints.")
        return found[-1][1]
    if not os.path.isfile(os.path.join(resume_from, "trainer_state.json")):
        raise FileNotFoundError(f"--resume_from_checkpoint {resume_from!r} is not a checkpoint folder of this script "
                                "(no trainer_state.json).")
    return resume_from


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int, processor=None) -> None:
    """`save_state` into checkpoints/step_N (named by step, so resuming never collides: hf_conventions pitfall 25),
    plus the processor (its tokenizer fixes the report-encoder vocabulary the weights belong to)."""
    path = checkpoint_dir(output_dir, step)
    accelerator.save_state(path)
    if accelerator.is_main_process:
        if processor is not None:
            processor.save_pretrained(os.path.join(path, "processor"))
        with open(os.path.join(path, "trainer_state.json"), "w", encoding="utf-8") as handle:
            json.dump({"completed_steps": step}, handle)  # written last: marks the checkpoint as complete
        for _, old in list_checkpoints(output_dir)[:-total_limit] if total_limit else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------------------------------------
# Schedule


@dataclass
class Schedule:
    micro_batches_per_epoch: int
    steps_per_epoch: int
    max_steps: int
    num_epochs: int
    history: list = field(default_factory=list)


def plan_schedule(num_micro_batches: int, accumulation: int, max_steps: int | None, epochs: float | None) -> Schedule:
    if num_micro_batches == 0:
        raise InputError("the training split gives no full batch; lower --batch_size or add data.")
    steps_per_epoch = math.ceil(num_micro_batches / accumulation)
    total = max_steps if max_steps is not None else math.ceil(epochs * steps_per_epoch)
    return Schedule(num_micro_batches, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


# ----------------------------------------------------------------------------------------------------------------------
# The loop


def pretrain(args) -> dict:
    """Run pre-training as configured by `args` (see `build_arg_parser`); returns a summary with the final metrics."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration, set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    # 1. Accelerator (processes, device, mixed precision, accumulation, trackers) ------------------------------------
    some_term_off = any(getattr(args, f"no_{term}") for term in LOSS_TERMS)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=make_trackers(args) or None,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")),
        # a seeded sampler: epoch e is the same permutation in every process and after a resume
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=some_term_off)],  # pitfall 26
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes or (accelerator.num_processes > 1 and not is_distributed()):
        # hf_conventions pitfall 24: on a CPU-only machine `--multi_gpu` without ACCELERATE_USE_CPU=1 gives N
        # unsynchronised single-process runs
        raise RuntimeError(f"{launched} processes were launched but Accelerate sees {accelerator.num_processes}; on a "
                           "CPU-only machine launch with ACCELERATE_USE_CPU=1.")
    set_seed(args.seed)

    # 2. Data ---------------------------------------------------------------------------------------------------------
    corpus = load_corpus(args)
    train_set = corpus[args.train_split]
    if args.max_train_samples is not None:
        train_set = train_set.select(range(min(args.max_train_samples, len(train_set))))
    reports = ReportTable.from_reports(train_set["report"])
    train_set = train_set.select_columns(["ecg"]).add_column("report_id", reports.row_report_ids.tolist())
    train_set = train_set.with_format("numpy")
    validation_set = corpus.get(args.validation_split) if has_labels(corpus.get(args.validation_split)) else None
    test_set = corpus.get(args.test_split) if has_labels(corpus.get(args.test_split)) else None

    # 3. Model, processor, frozen text features ----------------------------------------------------------------------
    resume_path = resolve_checkpoint(args.output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    tokenizer = None
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        if resume_path is not None:  # the vocabulary the checkpoint's weights were trained with
            tokenizer = TamerProcessor.from_pretrained(os.path.join(resume_path, "processor")).tokenizer
        elif args.tokenizer:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        else:
            tokenizer = shared_report_tokenizer(accelerator, reports.reports, args.local_vocab_size)
    model, processor = build_model_and_processor(args, reports.reports, tokenizer)
    if args.sync_batchnorm:
        if accelerator.device.type == "cpu":
            raise InputError("--sync_batchnorm needs GPUs: torch's SyncBatchNorm does not run on CPU tensors.")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    config = model.config
    model.to(accelerator.device)
    text_cache = None
    cache_gb = TextFeatureCache.estimated_gb(processor.tokenizer, reports.reports, config.text_config.hidden_size,
                                             args.max_text_length)
    if args.cache_text_features == "always" or (args.cache_text_features == "auto" and cache_gb <= args.text_cache_max_gb):
        text_cache = TextFeatureCache(model, processor.tokenizer, reports.reports, args.max_text_length)

    collator = PretrainCollator(processor, reports.reports, args.sampling_rate, tokenize=text_cache is None)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=collator,
        num_workers=args.dataloader_num_workers,
        generator=torch.Generator().manual_seed(args.seed),  # keeps DataLoader seeding off the global RNG (resume)
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate,
                                  weight_decay=args.weight_decay)
    # Not passed to prepare(): accelerate would step it once per process per call; T_0 counts optimizer steps.
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=args.scheduler_t0)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    accelerator.register_for_checkpointing(scheduler)
    schedule = plan_schedule(len(train_loader), args.gradient_accumulation_steps, args.max_steps, args.num_train_epochs)
    gather = gather_with_grad if accelerator.num_processes > 1 else None

    # 4. Resume -------------------------------------------------------------------------------------------------------
    completed_steps = 0
    if resume_path is not None:
        path = resume_path
        accelerator.load_state(path)  # model, optimizer, scheduler, RNG of every process
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as handle:
            completed_steps = json.load(handle)["completed_steps"]
        accelerator.print(f"Resumed from {path} at step {completed_steps}.")
    start_epoch, steps_into_epoch = divmod(completed_steps, schedule.steps_per_epoch)

    run_config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool)) or v is None}
    run_config.update(num_processes=accelerator.num_processes, cached_text_features=text_cache is not None,
                      unique_reports=len(reports.reports), train_records=len(train_set), max_steps_planned=schedule.max_steps)
    accelerator.init_trackers(args.project_name, config=run_config)
    accelerator.print(
        f"TAMER pre-training: {len(train_set)} records ({len(reports.reports)} unique reports), preset {args.model_preset}, "
        f"{accelerator.num_processes} process(es) x batch {args.batch_size} x accumulation "
        f"{args.gradient_accumulation_steps}, {schedule.max_steps} steps, text features "
        f"{'cached' if text_cache is not None else 'computed per batch'}."
    )

    # 5. Training loop ------------------------------------------------------------------------------------------------
    refreshed_at_step = None

    def refresh_batchnorm():  # in every process: the buffers stay identical (same rows everywhere)
        nonlocal refreshed_at_step
        if args.precise_bn_batches and refreshed_at_step != completed_steps:  # same weights: same statistics
            with accelerator.autocast():
                recompute_batchnorm_statistics(accelerator.unwrap_model(model), precise_bn_batches(
                    train_set, collator, args.batch_size, args.precise_bn_batches))
            refreshed_at_step = completed_steps

    progress = tqdm(total=schedule.max_steps, initial=completed_steps, disable=not accelerator.is_local_main_process,
                    desc="pre-training")
    step_losses, step_parts, last_eval, started = [], {}, None, time.time()
    model.train()
    for epoch in range(start_epoch, schedule.num_epochs):
        train_loader.set_epoch(epoch)
        epoch_loader = train_loader
        if epoch == start_epoch and steps_into_epoch:
            # continue at the data position of the checkpoint (the same permutation: seeded per epoch)
            epoch_loader = accelerator.skip_first_batches(train_loader, steps_into_epoch * args.gradient_accumulation_steps)
            epoch_loader.set_epoch(epoch)
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                loss, parts = training_loss(model, config, batch, text_cache, gather, args.mask_duplicate_reports)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            step_losses.append(loss.detach())
            for term, value in parts.items():
                step_parts[term] = step_parts.get(term, 0.0) + value / args.gradient_accumulation_steps
            if not accelerator.sync_gradients:
                continue
            scheduler.step()  # once per optimizer step (paper: T_0 = 40000 steps)
            completed_steps += 1
            progress.update(1)
            # the loss of the global batch: mean over micro-batches and processes
            global_loss = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean").item()
            step_losses = []
            if args.save_every_loss and accelerator.is_main_process:
                with open(args.save_every_loss, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": completed_steps, "loss": global_loss}) + "\n")
            if args.logging_steps and completed_steps % args.logging_steps == 0:
                logs = {"train/loss": global_loss, "train/lr": scheduler.get_last_lr()[0], "train/epoch": epoch,
                        **{f"train/loss_{term}": value for term, value in step_parts.items()}}
                accelerator.log(logs, step=completed_steps)
                progress.set_postfix(loss=f"{global_loss:.3f}")
            step_parts = {}
            if args.eval_steps and validation_set is not None and completed_steps % args.eval_steps == 0:
                refresh_batchnorm()
                last_eval = _validate(accelerator, model, processor, validation_set, args, completed_steps)
            if args.checkpointing_steps and completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, completed_steps, args.checkpoints_total_limit, processor)
            if args.simulate_kill_at_step == completed_steps:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash: nothing after the last checkpoint is saved
            if completed_steps >= schedule.max_steps:
                break
        if completed_steps >= schedule.max_steps:
            break
    progress.close()
    train_seconds = time.time() - started

    # 6. Final model: save_pretrained (model + processor + pipeline), held-out zero-shot AUC, model card ------------
    accelerator.wait_for_everyone()
    refresh_batchnorm()
    summary = {"completed_steps": completed_steps, "train_seconds": round(train_seconds, 1),
               "train_records": len(train_set), "unique_reports": len(reports.reports),
               "num_processes": accelerator.num_processes, "model_preset": args.model_preset,
               "text_encoder": args.text_encoder, "dataset": args.dataset or "synthetic (datasets_scripts.synthetic)",
               "loss_terms": config.enabled_losses, "validation": last_eval,
               "zero_shot_prompts": {"prompts": args.zero_shot_prompts, "template": args.zero_shot_template}}
    if accelerator.is_main_process:
        from .model_card import write_model_card
        from .pipelines import save_pretrained_with_pipeline

        final_model = accelerator.unwrap_model(model)
        if test_set is not None:
            result = zero_shot_auc(final_model, processor, test_set, args.sampling_rate, None, args.zero_shot_prompts,
                                   args.zero_shot_template)
            summary["test"] = {"macro_auc": result["macro_auc"], "num_records": result["num_records"],
                               "per_class": result["per_class"], "excluded": result["excluded"]}
            accelerator.print(f"Zero-shot macro-AUC on {result['num_records']} held-out records "
                              f"({args.test_split}): {result['macro_auc']:.4f}")
        save_pretrained_with_pipeline(final_model, processor, args.output_dir)
        with open(os.path.join(args.output_dir, "training_summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        write_model_card(args.output_dir, summary)
        accelerator.print(f"Saved model, processor and model card to {args.output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _validate(accelerator, model, processor, validation_set, args, step) -> dict | None:
    """Periodic zero-shot macro-AUC on the labelled validation split (main process; the others wait)."""
    result = None
    if accelerator.is_main_process:
        result = zero_shot_auc(accelerator.unwrap_model(model), processor, validation_set, args.sampling_rate,
                               args.max_eval_samples, args.zero_shot_prompts, args.zero_shot_template)
        accelerator.log({"eval/zero_shot_macro_auc": result["macro_auc"]}, step=step)
        accelerator.print(f"step {step}: zero-shot macro-AUC (validation, {result['num_records']} records) "
                          f"{result['macro_auc']:.4f}")
        result = {"step": step, "macro_auc": result["macro_auc"]}
    accelerator.wait_for_everyone()
    return result


__all__ = [
    "InputError", "build_arg_parser", "parse_args", "resolve_args", "load_corpus", "ReportTable", "TextFeatureCache",
    "PretrainCollator", "build_model_and_processor", "shared_report_tokenizer", "training_loss", "zero_shot_auc",
    "recompute_batchnorm_statistics", "precise_bn_batches",
    "jsonl_tracker_class", "make_trackers", "save_checkpoint", "resolve_checkpoint", "list_checkpoints",
    "plan_schedule", "pretrain", "gather_with_grad", "is_distributed", "PAPER_DEFAULTS", "QUICK_START_DEFAULTS",
]

"""Pre-training with Accelerate, for every model family: arguments, data, model, loss step, trackers, validation,
checkpoints. The loop knows no family: `--model_type` picks one from `tamer_hf.families`, which provides its presets,
model, processor and data collator (see the contract in `tamer_hf/families/__init__.py`).

`examples/pretrain.py` reads top to bottom through `pretrain(args)`:

    corpus (DatasetDict: ecg mV + report [+ labels]) ──► family collator (feature extractor, tokens / cached text
        features, masking, negatives) ──► model(**batch, return_loss=True, gather=gather_with_grad) ──► loss + parts
        ──► optimizer + scheduler stepped per optimizer step ──► save_state / zero-shot validation
        ──► save_pretrained (model, processor, pipeline) + model card

Batch sizes: `--global_batch_size` is the number of ECG-report pairs per optimizer step over all processes and
accumulation micro-steps (what papers report); the per-process micro-batch is derived from it. `--batch_size` sets the
per-process micro-batch instead.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .commands import ArgumentParser
from .distributed import end_training, gather_with_grad, is_distributed
from .families import DEFAULT_MODEL_TYPE, ModelFamily, ecg_input_values, family_names, get_family
from .modeling.ecg_saving import give_umask_permissions
from .modeling.pipeline_zero_shot_ecg import check_template

QUICK_START_RECORDS = 4000  # synthetic records generated in-process (~80 % train, 10 % validation, 10 % test)
LR_SCHEDULERS = ("cosine_restarts", "cosine", "tri_stage", "constant")
# Loop options a family may default (quick start / paper); what no family sets falls back to these.
LOOP_FALLBACKS = dict(
    optimizer="adamw", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
    lr_scheduler="cosine_restarts", tri_stage_ratios=[0.1, 0.4, 0.5], tri_stage_init_scale=0.01,
    tri_stage_final_scale=0.01, warmup_steps=0, eval_steps=0, checkpointing_steps=0, logging_steps=50,
    precise_bn_batches=0, max_text_length=256,
)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments


class InputError(ValueError):
    """Bad user input (arguments, dataset): the CLI prints its message as one line instead of a traceback."""


def model_type_of(argv) -> str:
    """`--model_type` from the command line (read first: it decides which family options exist)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model_type", default=DEFAULT_MODEL_TYPE)
    known, _ = pre.parse_known_args(argv)
    return known.model_type


def build_arg_parser(family: ModelFamily | None = None) -> argparse.ArgumentParser:
    family = family or get_family(DEFAULT_MODEL_TYPE)
    p = ArgumentParser(
        description="ECG-report pre-training of any model family (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model_type", default=DEFAULT_MODEL_TYPE, choices=family_names(),
                   help="model family; its own options are listed below")
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
    model.add_argument("--model_preset", choices=sorted(family.presets), help="size/ablation preset of the family")
    model.add_argument("--text_encoder", help="report encoder: a Hub id or folder of the family's text-encoder kind, "
                       "or 'local' (tokenizer trained on the reports + a small encoder; offline)")
    model.add_argument("--tokenizer", help="local text encoder: a saved tokenizer (folder or Hub id) instead of training "
                       "one on the reports (tokenizer training is not bit-reproducible from run to run)")
    model.add_argument("--max_text_length", type=int, help="report tokens (MERL: 256)")
    for term in family.loss_terms:
        model.add_argument(f"--no_{term}", action="store_true", help=f"switch the {term.upper()} loss term off")
    model.add_argument("--sync_batchnorm", action="store_true", help="SyncBatchNorm across GPUs (not on CPU)")

    train = p.add_argument_group("training")
    train.add_argument("--output_dir", default=None, help="default: runs/<model_type>-quickstart")
    train.add_argument("--global_batch_size", type=int,
                       help="ECG-report pairs per optimizer step over all processes and accumulation steps (the "
                       "papers' batch size); the per-process micro-batch is derived from it")
    train.add_argument("--batch_size", type=int, help="per-process micro-batch instead of --global_batch_size")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="micro-steps per optimizer step (does not add contrastive negatives)")
    train.add_argument("--num_train_epochs", type=float)
    train.add_argument("--max_steps", type=int, help="optimizer steps; overrides --num_train_epochs")
    train.add_argument("--optimizer", choices=["adamw", "adam"])
    train.add_argument("--learning_rate", type=float)
    train.add_argument("--adam_beta1", type=float)
    train.add_argument("--adam_beta2", type=float)
    train.add_argument("--adam_epsilon", type=float)
    train.add_argument("--weight_decay", type=float)
    train.add_argument("--lr_scheduler", choices=LR_SCHEDULERS,
                       help="cosine_restarts: CosineAnnealingWarmRestarts(T_0=--scheduler_t0); cosine: one cycle over "
                       "the run after --warmup_steps; tri_stage: fairseq's warm-up / hold / exponential decay with "
                       "--tri_stage_ratios; constant")
    train.add_argument("--scheduler_t0", type=int, help="cosine_restarts period in optimizer steps (default: the run)")
    train.add_argument("--warmup_steps", type=int, help="linear warm-up steps (cosine, constant)")
    train.add_argument("--tri_stage_ratios", type=float, nargs=3, metavar=("WARMUP", "HOLD", "DECAY"))
    train.add_argument("--tri_stage_init_scale", type=float, help="tri_stage: initial lr as a fraction of the peak")
    train.add_argument("--tri_stage_final_scale", type=float, help="tri_stage: final lr as a fraction of the peak")
    train.add_argument("--max_grad_norm", type=float, default=0.0, help="clip gradients (0: off)")
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"],
                       help="default: what `accelerate config` / `accelerate launch` says")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--precise_bn_batches", type=int,
                       help="before each validation and the final save, recompute the BatchNorm statistics as the "
                       "plain average over this many training batches (0: keep the running averages)")

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
    track.add_argument("--report_to", default=default_report_to(),
                       help="comma list of trackers: jsonl (ours), any of accelerate's (tensorboard, wandb, mlflow, "
                       "comet_ml, aim, clearml, dvclive, swanlab, trackio) or all (every installed one); or none. "
                       "A requested tracker that is not installed is an error. Default: jsonl, plus tensorboard "
                       "where it is installed")
    track.add_argument("--project_name", default=None, help="default: <model_type>-pretraining")
    # tests: JSONL of every step's loss, learning rate and row fingerprints (sums of the global batch's input rows)
    track.add_argument("--save_every_loss", help=argparse.SUPPRESS)
    track.add_argument("--simulate_kill_at_step", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL after step N
    # tests: SIGKILL while writing the checkpoint of step N
    track.add_argument("--simulate_kill_in_checkpoint", type=int, help=argparse.SUPPRESS)
    if family.add_arguments is not None:
        family.add_arguments(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        family = get_family(model_type_of(argv))
    except ValueError as error:
        raise InputError(str(error)) from None
    return resolve_args(build_arg_parser(family).parse_args(argv))


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset options from the family's paper or quick-start defaults, then check values (clear errors at the
    boundary)."""
    family = get_family(args.model_type)
    defaults = family.quick_start_defaults if args.dataset is None else family.paper_defaults
    for name, value in {**LOOP_FALLBACKS, **defaults}.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.output_dir is None:
        args.output_dir = f"runs/{args.model_type}-quickstart"
    if args.project_name is None:
        args.project_name = f"{args.model_type}-pretraining"
    if args.max_steps is None and args.num_train_epochs is None:
        raise InputError("give --max_steps or --num_train_epochs.")
    if args.batch_size is not None:
        args.global_batch_size = None  # an explicit per-process batch wins over the family's default global batch
    positive = ["batch_size", "global_batch_size", "gradient_accumulation_steps", "scheduler_t0", "max_text_length",
                "synthetic_records", "max_eval_samples", "max_steps", "num_train_epochs", "max_train_samples"]
    non_negative = ["checkpointing_steps", "eval_steps", "logging_steps", "dataloader_num_workers", "weight_decay",
                    "max_grad_norm", "checkpoints_total_limit", "precise_bn_batches", "warmup_steps"]
    for name in positive:
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise InputError(f"--{name} must be positive, got {getattr(args, name)}.")
    for name in non_negative:
        if getattr(args, name) < 0:
            raise InputError(f"--{name} must not be negative, got {getattr(args, name)}.")
    if args.scheduler_t0 is None:  # one cosine cycle over the run
        args.scheduler_t0 = args.max_steps
    if not args.learning_rate or not args.learning_rate > 0:
        raise InputError(f"--learning_rate must be positive, got {args.learning_rate}.")
    if any(not 0 <= ratio <= 1 for ratio in args.tri_stage_ratios) or abs(sum(args.tri_stage_ratios) - 1) > 1e-6:
        raise InputError(f"--tri_stage_ratios must be three fractions summing to 1, got {args.tri_stage_ratios}.")
    if all(getattr(args, f"no_{term}") for term in family.loss_terms):
        raise InputError(f"every loss term is switched off ({' '.join('--no_' + t for t in family.loss_terms)}); "
                         "keep at least one.")
    try:
        check_template(args.zero_shot_template, "--zero_shot_template")
        if family.check_arguments is not None:
            family.check_arguments(args)
    except ValueError as error:
        raise InputError(str(error)) from None
    tracker_names(args.report_to)  # an unknown or uninstalled tracker is named before anything is loaded
    return args


def per_process_batch_size(args, num_processes: int) -> int:
    """The micro-batch of each process: --batch_size, or --global_batch_size / (processes x accumulation steps)."""
    if args.global_batch_size is None:
        return args.batch_size
    shards = num_processes * args.gradient_accumulation_steps
    if args.global_batch_size % shards:
        raise InputError(f"--global_batch_size {args.global_batch_size} is not divisible by {num_processes} process(es) "
                         f"x {args.gradient_accumulation_steps} accumulation step(s).")
    return args.global_batch_size // shards


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
    elif os.path.isdir(path) and glob.glob(os.path.join(glob.escape(path), "**", "*.parquet"), recursive=True):
        # splits from the file names as on the Hub (train.parquet, data/validation-00000-of-00001.parquet, ...);
        # files named otherwise are all "train"
        corpus = datasets.load_dataset("parquet", data_dir=path)
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


class NullReportsWarning(UserWarning):
    """Training rows without a report (null, NaN or blank) were left out of pre-training."""


def is_null_report(report) -> bool:
    return report is None or (isinstance(report, float) and math.isnan(report)) or not str(report).strip()


def drop_null_reports(train_set):
    """`train_set` without the rows whose report is null, NaN or blank, with a NullReportsWarning counting them
    (they would otherwise be trained on as the text "None" or "nan"); InputError when no row has a report."""
    keep = [index for index, report in enumerate(train_set["report"]) if not is_null_report(report)]
    dropped = len(train_set) - len(keep)
    if not dropped:
        return train_set
    if not keep:
        raise InputError(f"every one of the {len(train_set)} training reports is null or empty: check --report_column.")
    warnings.warn(f"left out {dropped} of {len(train_set)} training rows whose report is null, NaN or empty.",
                  NullReportsWarning, stacklevel=2)
    return train_set.select(keep)


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


class BatchSeededCollator:
    """The family's collator, its random draws (masks, negatives) seeded by the batch itself.

    Each call seeds torch's CPU RNG from `--seed` and the batch's row indices in order, inside `fork_rng`, so a
    batch's draws depend on nothing but the batch: not on how far the DataLoader prefetched (Accelerate fetches the
    next batch before the current step ends, so a checkpoint's RNG state is already past it), on worker processes, or
    on a resume. The global RNG that the model's own draws (dropout, masks drawn in `forward`) use is left untouched.
    Rows carry `row_index`, their position in the training split.
    """

    def __init__(self, collate, seed: int):
        self.collate, self.seed = collate, seed

    def batch_seed(self, rows: list[dict]) -> int:
        key = np.array([self.seed] + [int(row["row_index"]) for row in rows], dtype=np.int64)
        return int.from_bytes(hashlib.blake2b(key.tobytes(), digest_size=8).digest(), "little") >> 1

    def __call__(self, rows: list[dict]) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.batch_seed(rows))
            return self.collate(rows)


def shared_tokenizer(accelerator, family: ModelFamily, reports: list[str], args):
    """Train the local text encoder's tokenizer once, on the main process, and give every process the same object.

    Tokenizer training is not deterministic from run to run: processes that trained their own would map the same
    report to different ids under one (broadcast) set of weights.
    """
    from accelerate.utils import broadcast_object_list

    tokenizer = [family.train_tokenizer(reports, args) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(tokenizer)
    return tokenizer[0]


def load_tokenizer(args, family: ModelFamily, resume_path: str | None, reports: list[str], accelerator):
    """The local text encoder's tokenizer: the checkpoint's when resuming (its weights belong to that vocabulary),
    `--tokenizer` when given, else one trained on the reports. None for a pretrained text encoder."""
    if args.text_encoder != "local":
        return None
    if resume_path is not None:
        return family.processor_class.from_pretrained(os.path.join(resume_path, "processor")).tokenizer
    if args.tokenizer:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(args.tokenizer)
    return shared_tokenizer(accelerator, family, reports, args)


# ----------------------------------------------------------------------------------------------------------------------
# BatchNorm statistics


def precise_bn_batches(train_set, feature_extractor, batch_size: int, num_batches: int, sampling_rate: float = 500.0):
    """The first `num_batches` full batches of the training split in stored order, as `input_values`: the same rows in
    every process and at every call (no random masking), so recomputed statistics are identical across processes and
    after a resume."""
    rows = min(num_batches * batch_size, len(train_set))
    for start in range(0, rows - batch_size + 1, batch_size):
        yield ecg_input_values(feature_extractor, [train_set[index] for index in range(start, start + batch_size)],
                               sampling_rate)


@torch.no_grad()
def recompute_batchnorm_statistics(model, batches) -> int:
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
            model.get_ecg_features(input_values=input_values.to(device))
            used += 1
    finally:  # momentum and mode as they were, even if a batch fails
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    return used


# ----------------------------------------------------------------------------------------------------------------------
# The loss of one micro-batch


def training_loss(model, batch: dict, gather=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one micro-batch and its named parts (floats, for logging): every `loss_<term>` of the output.

    `model` may be DDP-wrapped. With `gather` the batch-level terms contrast against the global batch of every process.
    """
    outputs = model(**batch, return_loss=True, gather=gather)
    parts = {key[len("loss_"):]: value.item() for key, value in outputs.items()
             if key.startswith("loss_") and value is not None}
    return outputs.loss, parts


# ----------------------------------------------------------------------------------------------------------------------
# Optimizer and learning-rate schedule


def make_optimizer(args, model) -> torch.optim.Optimizer:
    params = [param for param in model.parameters() if param.requires_grad]
    optimizer_class = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                           eps=args.adam_epsilon, weight_decay=args.weight_decay)


def tri_stage_factor(step: int, total: int, ratios, init_scale: float, final_scale: float) -> float:
    """fairseq's tri-stage schedule as a factor of the peak rate: linear warm-up from `init_scale`, hold, then
    exponential decay to `final_scale` (C-MELT: phases 0.1 / 0.4 / 0.5 of the run)."""
    warmup, hold = int(ratios[0] * total), int(ratios[1] * total)
    decay = max(total - warmup - hold, 1)
    if step < warmup:
        return init_scale + (1 - init_scale) * step / warmup
    if step < warmup + hold:
        return 1.0
    return final_scale ** (min(step - warmup - hold, decay) / decay)


def warmup_cosine_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))


def make_scheduler(args, optimizer, total_steps: int):
    """Stepped once per optimizer step (not passed to accelerate.prepare, which would step it once per process)."""
    from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LambdaLR

    if args.lr_scheduler == "cosine_restarts":
        return CosineAnnealingWarmRestarts(optimizer, T_0=args.scheduler_t0 or total_steps)
    if args.lr_scheduler == "tri_stage":
        return LambdaLR(optimizer, lambda step: tri_stage_factor(step, total_steps, args.tri_stage_ratios,
                                                                 args.tri_stage_init_scale, args.tri_stage_final_scale))
    if args.lr_scheduler == "cosine":
        return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total_steps, args.warmup_steps))
    return LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (args.warmup_steps + 1)))


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


def accelerate_tracker_names() -> list[str]:
    """The trackers accelerate can log to (`Accelerator(log_with=...)` names)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    return sorted(LOGGER_TYPE_TO_CLASS)


def tracker_installed(name: str) -> bool:
    """Whether accelerate's tracker `name` has its package installed (accelerate's own `is_<name>_available`)."""
    import accelerate.utils

    return getattr(accelerate.utils, f"is_{name}_available")()


def default_report_to() -> str:
    return "jsonl,tensorboard" if tracker_installed("tensorboard") else "jsonl"


def tracker_names(report_to: str) -> list[str]:
    """`--report_to` as tracker names: "jsonl" (ours), accelerate's trackers, "all". Raises `InputError` for a name
    that is neither, or for an accelerate tracker whose package is missing (accelerate would only log a warning and
    train without it)."""
    names = [name.strip() for name in report_to.split(",") if name.strip() not in ("", "none")]
    known = ["jsonl", "all", *accelerate_tracker_names()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"--report_to: unknown tracker(s) {', '.join(unknown)}; choose from {', '.join(known)} "
                         "or none.")
    missing = [name for name in names if name not in ("jsonl", "all") and not tracker_installed(name)]
    if missing:
        raise InputError(f"--report_to: {', '.join(missing)} requested but not installed "
                         f"(pip install {' '.join(name.replace('_', '-') for name in missing)}).")
    return names


def make_trackers(args) -> list:
    """`Accelerator(log_with=...)` for `--report_to`: our JSONL tracker as an instance, accelerate's by name ("all":
    every installed one)."""
    logging_dir = os.path.join(args.output_dir, "logs")
    return [jsonl_tracker_class()(args.project_name, logging_dir) if name == "jsonl" else name
            for name in tracker_names(args.report_to)]


# ----------------------------------------------------------------------------------------------------------------------
# Zero-shot validation (metrics from tamer_hf.evaluation)


def has_labels(dataset) -> bool:
    """Whether a split can be scored: it has a `labels` column. Labels without class names raise (a Parquet file or
    Hub dataset whose `labels` are not `List(ClassLabel)`): validation is never skipped silently."""
    if dataset is None or "labels" not in dataset.column_names:
        return False
    from datasets_scripts import label_names

    try:
        return len(label_names(dataset)) > 0
    except ValueError as error:
        raise InputError(f"--dataset: the {dataset.split or 'labelled'} split: {error}") from None


@torch.no_grad()
def zero_shot_auc(model, processor, dataset, sampling_rate: float = 500.0,
                  max_samples: int | None = None, prompts: str = "name", template: str = "{}.") -> dict:
    """Macro-AUC of cosine(ECG, label prompt) on a labelled split.

    `prompts="name"`: each label's clinical name ("atrial fibrillation", the packaged description up to its colon);
    `"description"`: the whole packaged description. Unknown labels are prompted by their code. `template` formats
    each prompt (the pipeline's `hypothesis_template`): "{}." makes it a sentence like those of the reports.
    """
    from datasets_scripts import label_names, multi_hot_labels

    from .evaluation import (cosine_scores, embed_ecgs, embed_prompts, label_set_of, load_label_descriptions,
                             make_prompts, per_class_auc, prompt_texts)

    if max_samples is not None and len(dataset) > max_samples:
        dataset = dataset.select(range(max_samples))
    names = label_names(dataset)
    label_set = label_set_of(dataset)
    try:
        descriptions = load_label_descriptions(label_set) if label_set else {}
    except ValueError:
        descriptions = {}
    descriptions = prompt_texts(descriptions, prompts)
    was_training = model.training
    model.eval()
    ecgs = dataset.with_format("numpy", columns=["ecg"])["ecg"]
    ecg_embeds = embed_ecgs(model, processor.feature_extractor, ecgs, sampling_rate=int(sampling_rate))
    prompt_embeds = embed_prompts(model, processor.tokenizer, make_prompts(names, template, descriptions))
    model.train(was_training)
    result = per_class_auc(multi_hot_labels(dataset), cosine_scores(ecg_embeds, prompt_embeds), names)
    result["num_records"] = len(dataset)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints


CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
INCOMPLETE_SUFFIX = ".incomplete"  # checkpoints/step_N.incomplete: being written, or left by a run killed meanwhile
COMPLETE_MARKER = "trainer_state.json"  # written last into a checkpoint


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, "checkpoints", f"step_{step}")


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """The complete checkpoints of `output_dir`, oldest first: (step, path)."""
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name)) for name in os.listdir(root)
             if (m := CHECKPOINT_PATTERN.match(name)) and os.path.isfile(os.path.join(root, name, COMPLETE_MARKER))]
    return sorted(found)


def incomplete_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint folders that a stopped run left unfinished (no COMPLETE_MARKER)."""
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, name) for name in os.listdir(root)
                  if name.startswith("step_") and os.path.isdir(os.path.join(root, name))
                  and not os.path.isfile(os.path.join(root, name, COMPLETE_MARKER)))


def resolve_checkpoint(output_dir: str, resume_from: str) -> str:
    if resume_from == "latest":
        found = list_checkpoints(output_dir)
        for path in incomplete_checkpoints(output_dir):
            warnings.warn(f"--resume_from_checkpoint latest: skipping {path}, a checkpoint whose writing did not "
                          "finish (the run stopped meanwhile).", stacklevel=2)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint under "
                                    f"{output_dir}/checkpoints.")
        return found[-1][1]
    if not os.path.isfile(os.path.join(resume_from, COMPLETE_MARKER)):
        raise FileNotFoundError(f"--resume_from_checkpoint {resume_from!r} is not a complete checkpoint folder of "
                                f"this script (no {COMPLETE_MARKER}).")
    return resume_from


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int, processor=None,
                    records: dict | None = None, kill_midway: bool = False) -> None:
    """`save_state` into checkpoints/step_N (named by step, so resuming never collides: hf_conventions pitfall 25),
    plus the processor (its tokenizer fixes the report-encoder vocabulary the weights belong to) and `records`
    (file name -> JSON value), written whole or not at all: everything goes into step_N.incomplete, which becomes
    step_N once complete, so a run killed while writing leaves its previous checkpoints as they were.
    `kill_midway` (tests): SIGKILL after the model state is written, before the checkpoint is complete."""
    path = checkpoint_dir(output_dir, step)
    partial = path + INCOMPLETE_SUFFIX
    if accelerator.is_main_process and os.path.exists(partial):
        shutil.rmtree(partial)  # left by an earlier, killed run
    accelerator.wait_for_everyone()
    accelerator.save_state(partial)  # every process writes its RNG state here
    if kill_midway:
        os.kill(os.getpid(), signal.SIGKILL)
    if accelerator.is_main_process:
        give_umask_permissions(glob.glob(os.path.join(glob.escape(partial), "**", "*.safetensors"), recursive=True))
        if processor is not None:
            processor.save_pretrained(os.path.join(partial, "processor"))
        for name, value in (records or {}).items():
            with open(os.path.join(partial, name), "w", encoding="utf-8") as handle:
                json.dump(value, handle)
        with open(os.path.join(partial, COMPLETE_MARKER), "w", encoding="utf-8") as handle:
            json.dump({"completed_steps": step}, handle)
    accelerator.wait_for_everyone()  # every process has written its part
    if accelerator.is_main_process:
        if os.path.exists(path):  # the same step of an earlier run that was resumed from before it
            os.replace(path, path + ".replaced")
            shutil.rmtree(path + ".replaced")
        os.replace(partial, path)
        for _, old in list_checkpoints(output_dir)[:-total_limit] if total_limit else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------------------------------------
# Schedule


@dataclass
class Schedule:
    steps_per_epoch: int
    max_steps: int
    num_epochs: int


def plan_schedule(num_records: int, global_batch: int, max_steps: int | None, epochs: float | None) -> Schedule:
    """Optimizer steps per epoch = full global batches in the training split, whatever the launch: step k of an epoch
    takes rows [k G, (k + 1) G) of the epoch's permutation (G = global batch) on one process, on N processes or with
    accumulation, and the rest of the epoch (fewer than G rows) is left out, as `drop_last` does on one process."""
    steps_per_epoch = num_records // global_batch
    if steps_per_epoch == 0:
        raise InputError(f"the training split ({num_records} records) gives no full global batch of {global_batch}; "
                         "lower the batch size or add data.")
    total = max_steps if max_steps is not None else math.ceil(epochs * steps_per_epoch)
    return Schedule(steps_per_epoch, total, math.ceil(total / steps_per_epoch))


# ----------------------------------------------------------------------------------------------------------------------
# The loop


def pretrain(args) -> dict:
    """Run pre-training as configured by `args` (see `build_arg_parser`); returns a summary with the final metrics."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration, set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    family = get_family(args.model_type)

    # 1. Accelerator (processes, device, mixed precision, accumulation, trackers) ------------------------------------
    some_term_off = any(getattr(args, f"no_{term}") for term in family.loss_terms)
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
    batch_size = per_process_batch_size(args, accelerator.num_processes)
    global_batch = batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    set_seed(args.seed)  # the same initial weights and local tokenizer in every process

    # 2. Data ---------------------------------------------------------------------------------------------------------
    corpus = load_corpus(args)
    train_set = corpus[args.train_split]
    if args.max_train_samples is not None:
        train_set = train_set.select(range(min(args.max_train_samples, len(train_set))))
    train_set = drop_null_reports(train_set)
    reports = ReportTable.from_reports(train_set["report"])
    train_set = train_set.select_columns(["ecg"]).add_column("report_id", reports.row_report_ids.tolist())
    train_set = train_set.add_column("row_index", list(range(len(train_set))))  # seeds each batch's draws
    train_set = train_set.with_format("numpy")
    validation_set = corpus.get(args.validation_split) if has_labels(corpus.get(args.validation_split)) else None
    test_set = corpus.get(args.test_split) if has_labels(corpus.get(args.test_split)) else None

    # 3. Model, processor, collator (the family's) --------------------------------------------------------------------
    resume_path = resolve_checkpoint(args.output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    tokenizer = load_tokenizer(args, family, resume_path, reports.reports, accelerator)
    model, processor = family.build(args, reports.reports, tokenizer)
    if args.sync_batchnorm:
        if accelerator.device.type == "cpu":
            raise InputError("--sync_batchnorm needs GPUs: torch's SyncBatchNorm does not run on CPU tensors.")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    config = model.config
    model.to(accelerator.device)
    collator = BatchSeededCollator(family.make_collator(args, model, processor, reports.reports, accelerator), args.seed)
    # From here on each process has its own stream for the model's draws (checkpoints restore every process's RNG).
    set_seed(args.seed + accelerator.process_index)
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collator,
        num_workers=args.dataloader_num_workers,
        generator=torch.Generator().manual_seed(args.seed),  # keeps DataLoader seeding off the global RNG (resume)
    )
    optimizer = make_optimizer(args, model)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    schedule = plan_schedule(len(train_set), global_batch, args.max_steps, args.num_train_epochs)
    scheduler = make_scheduler(args, optimizer, schedule.max_steps)
    accelerator.register_for_checkpointing(scheduler)
    gather = gather_with_grad if accelerator.num_processes > 1 else None

    # 4. Resume -------------------------------------------------------------------------------------------------------
    completed_steps = 0
    if resume_path is not None:
        accelerator.load_state(resume_path)  # model, optimizer, scheduler, RNG of every process
        with open(os.path.join(resume_path, "trainer_state.json"), encoding="utf-8") as handle:
            completed_steps = json.load(handle)["completed_steps"]
        accelerator.print(f"Resumed from {resume_path} at step {completed_steps}.")
    start_epoch, steps_into_epoch = divmod(completed_steps, schedule.steps_per_epoch)

    run_config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool)) or v is None}
    run_config.update(num_processes=accelerator.num_processes, per_process_batch_size=batch_size,
                      global_batch_size=global_batch, unique_reports=len(reports.reports),
                      train_records=len(train_set), max_steps_planned=schedule.max_steps,
                      steps_per_epoch=schedule.steps_per_epoch)
    accelerator.init_trackers(args.project_name, config=run_config)
    period = {"cosine_restarts": f"warm restarts every {args.scheduler_t0 or schedule.max_steps} steps",
              "tri_stage": f"tri-stage {args.tri_stage_ratios} of {schedule.max_steps} steps",
              "cosine": f"cosine over {schedule.max_steps} steps after {args.warmup_steps} warm-up",
              "constant": f"constant after {args.warmup_steps} warm-up"}[args.lr_scheduler]
    accelerator.print(
        f"{args.model_type} pre-training: {len(train_set)} records ({len(reports.reports)} unique reports), preset "
        f"{args.model_preset}, {accelerator.num_processes} process(es) x batch {batch_size} x accumulation "
        f"{args.gradient_accumulation_steps} = global batch {global_batch}; {schedule.steps_per_epoch} steps per "
        f"epoch, {schedule.max_steps} steps; {args.optimizer} lr {args.learning_rate:g}, {period}."
    )

    # 5. Training loop ------------------------------------------------------------------------------------------------
    refreshed_at_step = None

    def refresh_batchnorm():  # in every process: the buffers stay identical (same rows everywhere)
        nonlocal refreshed_at_step
        if args.precise_bn_batches and refreshed_at_step != completed_steps:  # same weights: same statistics
            with accelerator.autocast():
                recompute_batchnorm_statistics(accelerator.unwrap_model(model), precise_bn_batches(
                    train_set, processor.feature_extractor, batch_size, args.precise_bn_batches, args.sampling_rate))
            refreshed_at_step = completed_steps

    progress = tqdm(total=schedule.max_steps, initial=completed_steps, disable=not accelerator.is_local_main_process,
                    desc="pre-training")
    step_losses, step_rows, step_parts, last_eval, started = [], [], {}, None, time.time()
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
                loss, parts = training_loss(model, batch, gather)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            step_losses.append(loss.detach())
            if args.save_every_loss:  # which rows made this optimizer step, over every process
                main_input = batch[accelerator.unwrap_model(model).main_input_name]
                step_rows.extend(accelerator.gather(main_input.flatten(1).double().sum(1)).tolist())
            for term, value in parts.items():
                step_parts[term] = step_parts.get(term, 0.0) + value / args.gradient_accumulation_steps
            if not accelerator.sync_gradients:
                continue
            scheduler.step()  # once per optimizer step
            completed_steps += 1
            progress.update(1)
            # the loss of the global batch: mean over micro-batches and processes
            global_loss = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean").item()
            step_losses = []
            if not math.isfinite(global_loss):
                raise FloatingPointError(f"the loss is {global_loss} at step {completed_steps}: training diverged "
                                         "(lower --learning_rate, or set --max_grad_norm).")
            if args.save_every_loss and accelerator.is_main_process:
                with open(args.save_every_loss, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": completed_steps, "loss": global_loss,
                                             "lr": scheduler.get_last_lr()[0], "rows": sorted(step_rows)}) + "\n")
            step_rows = []
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
                save_checkpoint(accelerator, args.output_dir, completed_steps, args.checkpoints_total_limit, processor,
                                kill_midway=args.simulate_kill_in_checkpoint == completed_steps)
            if args.simulate_kill_at_step == completed_steps:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash: nothing after the last checkpoint is saved
            if completed_steps >= schedule.max_steps or completed_steps >= (epoch + 1) * schedule.steps_per_epoch:
                break  # the run's end, or the epoch's last full global batch
        if completed_steps >= schedule.max_steps:
            break
    progress.close()
    train_seconds = time.time() - started

    # 6. Final model: save_pretrained (model + processor + pipeline), held-out zero-shot AUC, model card ------------
    accelerator.wait_for_everyone()
    refresh_batchnorm()
    summary = {"model_type": args.model_type, "family": family.paper, "completed_steps": completed_steps,
               "train_seconds": round(train_seconds, 1), "train_records": len(train_set),
               "unique_reports": len(reports.reports), "num_processes": accelerator.num_processes,
               "global_batch_size": global_batch, "model_preset": args.model_preset,
               "text_encoder": args.text_encoder, "dataset": args.dataset or "synthetic (datasets_scripts.synthetic)",
               "loss_terms": [term for term in family.loss_terms if getattr(config, f"use_{term}", False)],
               "validation": last_eval,
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
        # how it was validated, for `tamer eval`'s defaults (ZeroShotPipelineConfigMixin)
        final_model.config.zero_shot_template = args.zero_shot_template
        final_model.config.zero_shot_prompts = args.zero_shot_prompts
        save_pretrained_with_pipeline(final_model, processor, args.output_dir)
        with open(os.path.join(args.output_dir, "training_summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        write_model_card(args.output_dir, summary)
        accelerator.print(f"Saved model, processor and model card to {args.output_dir}")
    accelerator.wait_for_everyone()
    model = optimizer = train_loader = final_model = None  # DDP's reducer dies before the process group
    end_training(accelerator)
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
    "InputError", "build_arg_parser", "parse_args", "resolve_args", "per_process_batch_size", "load_corpus",
    "NullReportsWarning", "ReportTable", "drop_null_reports", "shared_tokenizer", "training_loss", "zero_shot_auc", "recompute_batchnorm_statistics",
    "precise_bn_batches", "make_optimizer", "make_scheduler", "tri_stage_factor", "jsonl_tracker_class",
    "make_trackers", "save_checkpoint", "resolve_checkpoint", "list_checkpoints", "plan_schedule", "pretrain",
    "gather_with_grad", "is_distributed", "QUICK_START_RECORDS",
]

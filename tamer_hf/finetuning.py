"""Supervised fine-tuning and linear probing of a pre-trained model of any family, with Accelerate.

`examples/finetune.py` reads top to bottom through `finetune(args)`:

    pre-trained folder ──► config.model_type ──► the family's `…ForECGClassification` head (registered in
        `FAMILY.extra_auto_models`) .from_pretrained(num_labels, id2label): encoder weights loaded, head initialised
    labelled DatasetDict (datasets_scripts: `ecg` mV, multi-hot `labels`) ──► a seeded fraction of the train split
        ──► feature extractor (the inference transform) ──► model(input_values, labels) ──► BCE loss
        ──► optimizer + scheduler per optimizer step ──► validation macro-AUC every epoch ──► best epoch saved
        (save_pretrained model + processor) ──► test macro-AUC of the saved weights ──► results.json

`--freeze_encoder` is linear probing through the same code: only the linear head trains and the encoder stays in eval
mode (BatchNorm statistics and dropout of the pre-trained model). The loop never names a family: it calls
`model(input_values=..., labels=...)` and reads `loss` and `logits`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch

from .commands import ArgumentParser
from .distributed import end_training
from .families import ecg_input_values, get_family
from .modeling.ecg_classification import ECGClassificationMixin
from .training import (LR_SCHEDULERS, InputError, make_optimizer, make_scheduler, make_trackers, tracker_names,
                       per_process_batch_size, precise_bn_batches, recompute_batchnorm_statistics, resolve_checkpoint,
                       save_checkpoint)

SCRIPT = "examples/finetune.py"
BEST_MODEL_RECORD = "best_epoch.json"  # written next to the saved best model: which epoch it is
HISTORY_RECORD = "history.json"  # in each checkpoint: the epochs so far

# Named settings; an explicit command-line option wins over the recipe's value. Sources: reference/protocols.md §2
# (MERL), reference/cmelt_cgdmer.md §4 (C-MELT).
RECIPES = {
    # Ours: a short, safe default for a pre-trained encoder.
    "default": dict(freeze_encoder=False, num_train_epochs=20, global_batch_size=64, optimizer="adamw",
                    learning_rate=1e-4, weight_decay=0.01, lr_scheduler="cosine", warmup_steps=0),
    # C-MELT full fine-tuning (PhysioNet 2021 Dx): 100 epochs, batch 256, lr 5e-5. The paper does not state the
    # optimiser or schedule; its pre-training optimiser (Adam, betas 0.9/0.98, eps 1e-6, wd 0.01) at a constant rate
    # is assumed.
    "cmelt": dict(freeze_encoder=False, num_train_epochs=100, global_batch_size=256, optimizer="adam",
                  learning_rate=5e-5, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01, lr_scheduler="constant"),
    # C-MELT linear probe: frozen encoder, Adam, 200 epochs, batch 128, lr 1e-3 (no weight decay or schedule stated).
    "cmelt_probe": dict(freeze_encoder=True, num_train_epochs=200, global_batch_size=128, optimizer="adam",
                        learning_rate=1e-3, weight_decay=0.0, lr_scheduler="constant"),
    # MERL finetune/ as shipped: the whole network trains (its freeze switch is never on), Adam lr 1e-3, wd 1e-4,
    # batch 16, 100 epochs, lr x 0.1 after 40 scheduler calls (stepped per batch and per epoch).
    "merl": dict(freeze_encoder=False, num_train_epochs=100, global_batch_size=16, optimizer="adam",
                 learning_rate=1e-3, weight_decay=1e-4, lr_scheduler="merl_step"),
    # MERL's intended linear probe: the same settings with the encoder frozen.
    "merl_probe": dict(freeze_encoder=True, num_train_epochs=100, global_batch_size=16, optimizer="adam",
                       learning_rate=1e-3, weight_decay=1e-4, lr_scheduler="merl_step"),
}
# Options no recipe sets.
FALLBACKS = dict(adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, warmup_steps=0, scheduler_t0=None,
                 tri_stage_ratios=[0.1, 0.4, 0.5], tri_stage_init_scale=0.01, tri_stage_final_scale=0.01)
MERL_LR_DROP_CALLS = 40  # MERL: MultiStepLR(milestones=[40], gamma=0.1)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments


def parse_fraction(text: str) -> float:
    """'10%' or '0.1' -> 0.1; a fraction of the train split in (0, 1]."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (use e.g. 0.1 or 10%)") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (or 1%..100%), got {text!r}")
    return value


def build_arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="Fine-tune (or linearly probe) a pre-trained ECG model of any family on a labelled dataset "
        "(run with `accelerate launch`).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="pre-trained model folder or Hub id (a pretrain.py output)")
    p.add_argument("--dataset", required=True, help="labelled DatasetDict folder written by datasets_scripts")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--train_split", default="train")
    p.add_argument("--validation_split", default="validation", help="selects the epoch (macro-AUC)")
    p.add_argument("--test_split", default="test", help="scored once, with the selected epoch's saved weights")
    p.add_argument("--sampling_rate", type=float, default=500.0, help="Hz of the `ecg` column (datasets_scripts: 500)")
    p.add_argument("--train_fraction", type=parse_fraction, default=1.0,
                   help="fraction of the train split (0.01 / 0.1 / 1, or 1%% / 10%% / 100%%): MERL's subset, "
                   "train_test_split(train_size=fraction, random_state=42)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                   help="named settings (see docs/finetuning.md); explicit options override them")
    p.add_argument("--freeze_encoder", action=argparse.BooleanOptionalAction,
                   help="linear probing: train only the linear head, the encoder stays frozen in eval mode")
    p.add_argument("--num_train_epochs", type=int)
    p.add_argument("--global_batch_size", type=int, help="records per optimizer step over all processes and "
                   "accumulation steps (the papers' batch size)")
    p.add_argument("--batch_size", type=int, help="per-process micro-batch instead of --global_batch_size")
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--optimizer", choices=["adamw", "adam"])
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--weight_decay", type=float)
    p.add_argument("--adam_beta1", type=float)
    p.add_argument("--adam_beta2", type=float)
    p.add_argument("--adam_epsilon", type=float)
    p.add_argument("--lr_scheduler", choices=[*LR_SCHEDULERS, "merl_step"],
                   help="as pretrain.py, plus merl_step (MERL's x0.1 after 40 batch-or-epoch calls)")
    p.add_argument("--warmup_steps", type=int)
    p.add_argument("--max_grad_norm", type=float, default=0.0, help="clip gradients (0: off)")
    p.add_argument("--precise_bn_batches", type=int, default=0,
                   help="before each validation, recompute the encoder's BatchNorm statistics as the plain average "
                   "over this many training batches (as pretrain.py; 0: keep the running averages; never with "
                   "--freeze_encoder)")
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--seed", type=int, default=42, help="head initialisation, data order")
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test macro-AUC CI (0: none)")
    p.add_argument("--dataloader_num_workers", type=int, default=0)
    p.add_argument("--report_to", default="jsonl", help="trackers as pretrain's --report_to: jsonl, any of "
                   "accelerate's (tensorboard, wandb, mlflow, ...), all, or none; a missing one is an error")
    p.add_argument("--project_name", default="finetuning")
    p.add_argument("--checkpointing_epochs", type=int, default=1,
                   help="save_state (model, optimizer, scheduler, RNG) into checkpoints/step_N every N epochs "
                   "(0: never)")
    p.add_argument("--checkpoints_total_limit", type=int, default=1)
    p.add_argument("--resume_from_checkpoint", help="'latest' or a checkpoint folder of --output_dir")
    p.add_argument("--simulate_kill_after_epoch", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL after epoch N
    return p


def parse_args(argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_arg_parser().parse_args(argv)
    args.argv = argv
    return resolve_args(args)


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset options from the recipe, then the fallbacks; check values (clear errors at the boundary)."""
    for name, value in {**FALLBACKS, **RECIPES[args.recipe]}.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.batch_size is not None:
        args.global_batch_size = None  # an explicit per-process batch wins over the recipe's global batch
    for name in ("num_train_epochs", "global_batch_size", "batch_size", "gradient_accumulation_steps",
                 "eval_batch_size"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise InputError(f"--{name} must be positive, got {getattr(args, name)}.")
    for name in ("weight_decay", "warmup_steps", "max_grad_norm", "bootstrap", "dataloader_num_workers",
                 "precise_bn_batches", "checkpointing_epochs", "checkpoints_total_limit"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name} must not be negative, got {getattr(args, name)}.")
    if not args.learning_rate > 0:
        raise InputError(f"--learning_rate must be positive, got {args.learning_rate}.")
    tracker_names(args.report_to)  # an unknown or uninstalled tracker is named before anything is loaded
    return args


# ----------------------------------------------------------------------------------------------------------------------
# Data


def load_labelled_dataset(path: str, splits: list[str]):
    """The DatasetDict written by datasets_scripts, its label names, and the checks a run needs: the splits exist and
    have `ecg` and named `labels`, and validation has a class with both label values (else no epoch can be selected).
    A folder prepared before the class names moved into the Features is upgraded in memory."""
    import datasets

    from datasets_scripts.common import label_names, upgrade_labels

    try:
        corpus = datasets.load_from_disk(path)
    except FileNotFoundError:
        raise InputError(f"--dataset {path!r}: not a DatasetDict folder written by datasets_scripts "
                         "(save_to_disk).") from None
    if not isinstance(corpus, datasets.DatasetDict):
        raise InputError(f"--dataset {path!r} is one split, not a DatasetDict with train/validation/test splits.")
    for split in splits:
        if split not in corpus:
            raise InputError(f"--dataset {path!r} has no split {split!r} (splits: {sorted(corpus)}).")
        missing = {"ecg", "labels"} - set(corpus[split].column_names)
        if missing:
            raise InputError(f"--dataset {path!r}: split {split!r} has no column(s) {sorted(missing)}; a labelled "
                             "dataset from datasets_scripts has `ecg` and `labels`.")
    try:
        names = label_names(corpus[splits[0]])
        corpus = datasets.DatasetDict({split: upgrade_labels(corpus[split]) for split in splits})
    except ValueError as error:
        raise InputError(f"--dataset {path!r}: {error}.") from None
    return corpus, names


def labels_of(dataset) -> np.ndarray:
    from datasets_scripts import multi_hot_labels

    return multi_hot_labels(dataset)  # (N, C) int8


def train_subset(num_records: int, fraction: float) -> np.ndarray:
    """MERL's subset of the train rows (`train_test_split(train_size=fraction, random_state=42)`), sorted; every row
    at 100 %."""
    from .linear_probe import merl_subset_indices

    return np.sort(merl_subset_indices(num_records, fraction))


class ClassificationCollator:
    """Rows {ecg (12, T) mV, labels: class indices} -> `input_values` (B, 12, 5000) through the feature extractor (the
    inference transform) and multi-hot float `labels` (B, num_labels)."""

    def __init__(self, feature_extractor, sampling_rate: float, num_labels: int):
        self.feature_extractor, self.sampling_rate, self.num_labels = feature_extractor, sampling_rate, num_labels

    def __call__(self, rows: list[dict]) -> dict:
        labels = torch.zeros(len(rows), self.num_labels)  # (B, C)
        for row_labels, row in zip(labels, rows):
            row_labels[[int(index) for index in row["labels"]]] = 1.0
        return {"input_values": ecg_input_values(self.feature_extractor, rows, self.sampling_rate), "labels": labels}


# ----------------------------------------------------------------------------------------------------------------------
# Model


def head_class_for(model_type: str) -> type:
    """The family's `…ForECGClassification` class: the entry of `FAMILY.extra_auto_models` that is an ECG head."""
    family = get_family(model_type)
    heads = [cls for cls in family.extra_auto_models.values() if issubclass(cls, ECGClassificationMixin)]
    if not heads:
        raise InputError(f"the {model_type!r} family has no ECG classification head: register its "
                         "…ForECGClassification class in FAMILY.extra_auto_models.")
    return heads[0]


def load_head_model(model_path: str, names: list[str]):
    """The head model of `model_path`'s family with `len(names)` labels, and the folder's processor.

    A pre-trained folder gives the encoder and a new head; a fine-tuned folder of another label set also loads (its
    old head, of another shape, is replaced)."""
    from transformers import AutoConfig, AutoProcessor

    model_type = AutoConfig.from_pretrained(model_path).model_type
    id2label = dict(enumerate(names))
    model = head_class_for(model_type).from_pretrained(
        model_path, num_labels=len(names), id2label=id2label, label2id={name: i for i, name in id2label.items()},
        problem_type="multi_label_classification", ignore_mismatched_sizes=True)
    if getattr(model.config, "custom_pipelines", None):
        model.config.custom_pipelines = {}  # the zero-shot pipeline needs the report encoder, which a head drops
    return model, AutoProcessor.from_pretrained(model_path)


@torch.no_grad()
def predict_logits(model, loader, accelerator) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, C) and labels (N, C) of every record of a prepared loader, gathered over processes (each process
    gets all of them, in dataset order)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        batch_logits = model(input_values=batch["input_values"]).logits
        batch_logits, batch_labels = accelerator.gather_for_metrics((batch_logits, batch["labels"]))
        logits.append(batch_logits.float().cpu().numpy())
        labels.append(batch_labels.cpu().numpy())
    model.train(was_training)
    return np.concatenate(logits).astype(np.float64), np.concatenate(labels).astype(np.int8)


def merl_step_factor(step: int, steps_per_epoch: int) -> float:
    """MERL's learning-rate factor: MultiStepLR([40], 0.1) stepped after every batch and again after every epoch, so
    the rate drops once 40 calls have happened (within epoch 1 of a full split)."""
    calls = step + step // steps_per_epoch
    return 0.1 if calls >= MERL_LR_DROP_CALLS else 1.0


def make_finetune_scheduler(args, optimizer, total_steps: int, steps_per_epoch: int):
    """pretrain.py's schedulers (`tamer_hf.training.make_scheduler`), plus MERL's step; stepped per optimizer step."""
    if args.lr_scheduler == "merl_step":
        from torch.optim.lr_scheduler import LambdaLR

        return LambdaLR(optimizer, lambda step: merl_step_factor(step, steps_per_epoch))
    return make_scheduler(args, optimizer, total_steps)


# ----------------------------------------------------------------------------------------------------------------------
# The run


def finetune(args) -> dict:
    """Fine-tune as configured by `args` (see `build_arg_parser`); writes the best model, its processor and
    results.json to `args.output_dir` and returns the results."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import ProjectConfiguration, set_seed
    from safetensors.torch import load_file
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .evaluation import (checkpoint_record, command_record, dataset_record, evaluate_scores, package_record,
                             per_class_auc)

    # 1. Accelerator --------------------------------------------------------------------------------------------------
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=make_trackers(args) or None,
        project_config=ProjectConfiguration(project_dir=args.output_dir,
                                            logging_dir=os.path.join(args.output_dir, "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    batch_size = per_process_batch_size(args, accelerator.num_processes)
    global_batch = batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    set_seed(args.seed)

    # 2. Data: the labelled splits, a fraction of train -------------------------------------------------------------
    splits = [args.train_split, args.validation_split, args.test_split]
    corpus, names = load_labelled_dataset(args.dataset, splits)
    rows = train_subset(len(corpus[args.train_split]), args.train_fraction)
    train_set = corpus[args.train_split].select(rows)
    if len(train_set) < 2:
        raise InputError(f"--train_fraction {args.train_fraction:g} leaves {len(train_set)} training record(s); the "
                         "head's BatchNorm needs batches of at least two.")
    validation_set, test_set = corpus[args.validation_split], corpus[args.test_split]
    validation_check = per_class_auc(labels_of(validation_set), np.zeros((len(validation_set), len(names))), names)
    if len(validation_check["excluded"]) == len(names):
        raise InputError(f"the {args.validation_split!r} split has no class with both label values: no epoch can be "
                         "selected on its macro-AUC.")

    # 3. Model: the family's head over the pre-trained encoder ------------------------------------------------------
    model, processor = load_head_model(args.model, names)
    if args.freeze_encoder:
        model.freeze_base_model()
    collator = ClassificationCollator(processor.feature_extractor, args.sampling_rate, len(names))

    def loader(dataset, size, shuffle, drop_last=False):
        return DataLoader(dataset.select_columns(["ecg", "labels"]).with_format("numpy"), batch_size=size,
                          shuffle=shuffle, drop_last=drop_last, collate_fn=collator,
                          num_workers=args.dataloader_num_workers,
                          generator=torch.Generator().manual_seed(args.seed) if shuffle else None)

    # Full batches only (the head's BatchNorm needs two records); a subset smaller than one batch is one batch.
    train_loader = loader(train_set, min(batch_size, len(train_set)), shuffle=True, drop_last=True)
    bn_rows = train_set.select_columns(["ecg"]).with_format("numpy")
    validation_loader = loader(validation_set, args.eval_batch_size, shuffle=False)
    test_loader = loader(test_set, args.eval_batch_size, shuffle=False)
    optimizer = make_optimizer(args, model)
    model, optimizer, train_loader, validation_loader, test_loader = accelerator.prepare(
        model, optimizer, train_loader, validation_loader, test_loader)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    total_steps = steps_per_epoch * args.num_train_epochs
    scheduler = make_finetune_scheduler(args, optimizer, total_steps, steps_per_epoch)
    accelerator.register_for_checkpointing(scheduler)

    task = "linear probing (frozen encoder)" if args.freeze_encoder else "full fine-tuning"
    run_config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool)) or v is None}
    accelerator.init_trackers(args.project_name, config=run_config)
    accelerator.print(
        f"{task} of {type(accelerator.unwrap_model(model)).__name__} ({args.recipe} recipe): {len(train_set)} of "
        f"{len(corpus[args.train_split])} train records ({args.train_fraction * 100:g} %), {len(names)} labels; "
        f"{accelerator.num_processes} process(es) x batch {batch_size} x accumulation "
        f"{args.gradient_accumulation_steps} = global batch {global_batch}; {steps_per_epoch} steps per epoch, "
        f"{args.num_train_epochs} epochs; {args.optimizer} lr {args.learning_rate:g}, {args.lr_scheduler} schedule.")

    # 4. Resume: weights, optimizer, scheduler and RNG from the checkpoint; the best model is the one on disk -------
    history, best = [], {"epoch": None, "validation_macro_auc": -math.inf}
    completed_steps, resumed_from = 0, None
    if args.resume_from_checkpoint:
        history, best, resumed_from = resume(accelerator, args)
        completed_steps = history[-1]["step"] if history else 0
        accelerator.print(f"Resumed after epoch {len(history)} (step {completed_steps}); best so far: epoch "
                          f"{best['epoch']} (validation macro-AUC {best['validation_macro_auc']:.4f}).")

    # 5. Training loop: one validation per epoch, the best epoch saved ----------------------------------------------
    started = time.time()
    progress = tqdm(total=total_steps, initial=completed_steps, disable=not accelerator.is_local_main_process,
                    desc=task)
    model.train()
    for epoch in range(len(history) + 1, args.num_train_epochs + 1):
        train_loader.set_epoch(epoch)
        epoch_losses = []
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            epoch_losses.append(loss.detach())
            if accelerator.sync_gradients:
                scheduler.step()
                completed_steps += 1
                progress.update(1)
        train_loss = accelerator.reduce(torch.stack(epoch_losses).mean(), reduction="mean").item()
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss is {train_loss} in epoch {epoch}: training diverged "
                                     "(lower --learning_rate, or set --max_grad_norm).")
        if args.precise_bn_batches and not args.freeze_encoder:  # every process: the same rows, the same buffers
            with accelerator.autocast():
                recompute_batchnorm_statistics(accelerator.unwrap_model(model).base_model, precise_bn_batches(
                    bn_rows, processor.feature_extractor, batch_size, args.precise_bn_batches, args.sampling_rate))
        logits, labels = predict_logits(model, validation_loader, accelerator)
        validation_auc = per_class_auc(labels, logits, names)["macro_auc"]
        history.append({"epoch": epoch, "step": completed_steps, "train_loss": train_loss,
                        "learning_rate": scheduler.get_last_lr()[0], "validation_macro_auc": validation_auc})
        accelerator.log({"train/loss": train_loss, "train/lr": scheduler.get_last_lr()[0],
                         "eval/macro_auc": validation_auc}, step=completed_steps)
        progress.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{validation_auc:.4f}")
        if validation_auc > best["validation_macro_auc"]:  # every process sees the same gathered AUC
            best = {"epoch": epoch, "validation_macro_auc": validation_auc}
            save_model(accelerator, model, processor, args.output_dir, best)
        if args.checkpointing_epochs and epoch % args.checkpointing_epochs == 0:
            save_epoch_checkpoint(accelerator, args, completed_steps, history)
        if args.simulate_kill_after_epoch == epoch:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash: nothing after the last checkpoint is kept
    progress.close()
    train_seconds = time.time() - started

    # 6. Test: the selected epoch's saved weights, scored with the evaluation harness's metric ----------------------
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(load_file(os.path.join(args.output_dir, "model.safetensors")))
    logits, labels = predict_logits(model, test_loader, accelerator)
    test = evaluate_scores(labels, logits, names, num_bootstrap=args.bootstrap, seed=args.seed)
    test["num_records"] = len(test_set)
    accelerator.print(f"Selected epoch {best['epoch']} (validation macro-AUC {best['validation_macro_auc']:.4f}); "
                      f"test macro-AUC {test['macro_auc']:.4f} on {len(test_set)} records"
                      + (f", excluded (one label value): {test['excluded']}" if test["excluded"] else "") + ".")

    results = {
        "task": task,
        "model": {**checkpoint_record(args.model), "model_type": unwrapped.config.model_type,
                  "head_class": type(unwrapped).__name__, "output_dir": args.output_dir},
        "dataset": {split: dataset_record(corpus[split], args.dataset, split) for split in splits},
        "label_names": names,
        "train_fraction": args.train_fraction,
        "num_train": len(rows),
        "train_rows_sha256": hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest(),
        "subset": "train_test_split(train_size=fraction, random_state=42) (MERL); every row at 100 %",
        "train_classes_without_positives": [name for name, count in zip(names, labels_of(train_set).sum(0))
                                            if not count],
        "seed": args.seed,
        "recipe": args.recipe,
        "settings": {name: getattr(args, name) for name in (
            "freeze_encoder", "num_train_epochs", "optimizer", "learning_rate", "weight_decay", "adam_beta1",
            "adam_beta2", "adam_epsilon", "lr_scheduler", "warmup_steps", "max_grad_norm", "precise_bn_batches",
            "mixed_precision")}
        | {"global_batch_size": global_batch, "per_process_batch_size": batch_size,
           "num_processes": accelerator.num_processes, "steps_per_epoch": steps_per_epoch},
        "args": run_config,
        "command": command_record(SCRIPT, args.argv) if hasattr(args, "argv") else None,
        "package": package_record(),
        "selection": {"metric": f"macro-AUC on {args.validation_split!r}, every epoch", **best,
                      "validation_excluded": validation_check["excluded"]},
        "history": history,
        "resumed_from": resumed_from,
        "test": test,
        "train_seconds": round(train_seconds, 1),
    }
    if accelerator.is_main_process:
        with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    accelerator.wait_for_everyone()
    model = optimizer = None  # DDP's reducer dies before the process group (tamer_hf.distributed.end_training)
    end_training(accelerator)
    return results


def save_epoch_checkpoint(accelerator, args, completed_steps: int, history: list[dict]) -> None:
    """`tamer_hf.training.save_checkpoint` (save_state into checkpoints/step_N, complete or absent) with the epoch
    history in it."""
    save_checkpoint(accelerator, args.output_dir, completed_steps, args.checkpoints_total_limit,
                    records={HISTORY_RECORD: history})


def resume(accelerator, args) -> tuple[list[dict], dict, dict]:
    """Load the checkpoint's state (model, optimizer, scheduler, RNG of every process); return the epoch history up
    to it, the best model's record and where the run resumed. The best is read from the saved model folder
    (`best_epoch.json`): it is what the test will load, possibly from an epoch after the checkpoint (epochs after the
    checkpoint are trained again)."""
    path = resolve_checkpoint(args.output_dir, args.resume_from_checkpoint)
    accelerator.load_state(path)
    with open(os.path.join(path, HISTORY_RECORD), encoding="utf-8") as handle:
        history = json.load(handle)
    best = {"epoch": None, "validation_macro_auc": -math.inf}
    best_path = os.path.join(args.output_dir, BEST_MODEL_RECORD)
    if os.path.isfile(best_path):
        with open(best_path, encoding="utf-8") as handle:
            best = json.load(handle)
    return history, best, {"checkpoint": path, "epoch": len(history)}


def save_model(accelerator, model, processor, output_dir: str, best: dict) -> None:
    """The current weights as a loadable folder (model + processor + remote code), and which epoch they are."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
        with open(os.path.join(output_dir, BEST_MODEL_RECORD), "w", encoding="utf-8") as handle:
            json.dump(best, handle)
    accelerator.wait_for_everyone()


__all__ = ["RECIPES", "ClassificationCollator", "build_arg_parser", "finetune", "head_class_for", "load_head_model",
           "load_labelled_dataset", "merl_step_factor", "parse_args", "parse_fraction", "predict_logits",
           "resolve_args", "train_subset"]

"""The TAMER family for the pre-training loop: presets, the frozen report encoder (MedCPT or a local one), the
text-feature cache and the data collator.

Paper defaults (TAMER §4): AdamW lr 2e-4, weight decay 1e-7, CosineAnnealingWarmRestarts T_0 = 40000 steps, batch 256
(one A100: a global batch of 256), 50 epochs. With no `--dataset`, the offline quick start replaces them.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ..modeling.configuration_tamer import LOSS_TERMS, TamerConfig
from ..modeling.feature_extraction_tamer import TamerFeatureExtractor
from ..modeling.modeling_tamer import TamerForECGClassification, TamerModel, TamerTextEncoding
from ..modeling.processing_tamer import TamerProcessor
from ..presets import MODEL_PRESETS, SIZE_PRESETS, preset_fields
from . import ModelFamily, ecg_input_values

PAPER_TEXT_ENCODER = "ncbi/MedCPT-Query-Encoder"
LOCAL_TEXT_ENCODER = "local"  # a WordPiece tokenizer trained on the corpus' reports + a small frozen BERT

PAPER_DEFAULTS = dict(
    model_preset="paper", text_encoder=PAPER_TEXT_ENCODER, global_batch_size=256, num_train_epochs=50,
    optimizer="adamw", learning_rate=2e-4, weight_decay=1e-7, lr_scheduler="cosine_restarts", scheduler_t0=40000,
    cache_text_features="auto", mask_duplicate_reports=False, eval_steps=2000, checkpointing_steps=2000,
    logging_steps=50, precise_bn_batches=50,
)
QUICK_START_DEFAULTS = dict(
    model_preset="quick", text_encoder=LOCAL_TEXT_ENCODER, global_batch_size=32, max_steps=800,
    optimizer="adamw", learning_rate=1e-3,  # a short run on a small corpus; the paper's 2e-4 is for 256 x 50 epochs
    weight_decay=1e-7, lr_scheduler="cosine_restarts",
    scheduler_t0=None,  # one cosine cycle over the whole run (the learning rate ends near 0)
    cache_text_features="auto", mask_duplicate_reports=True, eval_steps=200, checkpointing_steps=200,
    logging_steps=10, precise_bn_batches=16,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TAMER")
    group.add_argument("--model_size", choices=sorted(SIZE_PRESETS),
                       help="put --model_preset at this size (e.g. --model_preset no-wlai --model_size quick for a CPU "
                       "run); default: the preset's own sizes")
    group.add_argument("--no_spectrogram", action="store_true",
                       help="no spectrogram branch (Table 4 'time + report'; needs --no_rlca)")
    group.add_argument("--no_wlai", action="store_true",
                       help="no WLAI: z^e is the attention pool over the ECG tokens (Table 4 'w/o WLAI', MERL's head)")
    group.add_argument("--local_text_hidden_size", type=int, default=256)
    group.add_argument("--local_text_layers", type=int, default=1)
    group.add_argument("--local_text_init_range", type=float, default=0.02, help="std of the local encoder's weights")
    group.add_argument("--local_vocab_size", type=int, default=2000)
    group.add_argument("--temperature", type=float, help="one InfoNCE temperature for every term (paper: 0.04)")
    group.add_argument("--cache_text_features", choices=["auto", "always", "never"],
                       help="encode each unique report once with the frozen encoder (auto: when it fits "
                       "--text_cache_max_gb)")
    group.add_argument("--text_cache_max_gb", type=float, default=8.0)
    group.add_argument("--mask_duplicate_reports", action=argparse.BooleanOptionalAction,
                       help="in RADA, do not count another pair with the identical report as a negative")


def check_arguments(args) -> None:
    if args.temperature is not None and args.temperature <= 0:
        raise ValueError(f"--temperature must be positive, got {args.temperature}.")
    for name in ("local_text_hidden_size", "local_text_layers", "local_vocab_size"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(args, name)}.")
    fields = model_fields(args)
    if fields.get("use_rlca", True) and not fields.get("use_spectrogram", True):
        raise ValueError(f"--model_preset {args.model_preset} without the spectrogram branch keeps RLCA, which aligns "
                         "the ECG with its spectrogram: add --no_rlca (or use --model_preset time-report).")
    try:
        config = TamerConfig(**fields)
    except ValueError as error:
        raise ValueError(f"--model_preset {args.model_preset} with these switches: {error}") from None
    if not config.enabled_losses:
        raise ValueError(f"--model_preset {args.model_preset} with these switches has no loss term left; keep at "
                         "least one.")


def model_fields(args) -> dict:
    """TamerConfig fields of --model_preset at --model_size, with the command line's switches: a term or branch is on
    when the preset has it on (TamerConfig's default: on) and no --no_<name> switches it off."""
    fields = preset_fields(args.model_preset, args.model_size)
    for term in LOSS_TERMS:
        fields[f"use_{term}"] = fields.get(f"use_{term}", True) and not getattr(args, f"no_{term}")
        if args.temperature is not None:
            fields[f"{term}_temperature"] = args.temperature
    for branch in ("spectrogram", "wlai"):
        fields[f"use_{branch}"] = fields.get(f"use_{branch}", True) and not getattr(args, f"no_{branch}")
    return fields


def train_tokenizer(reports: list[str], args):
    """The local report encoder's WordPiece tokenizer, trained on the corpus' reports."""
    from ..text import train_report_tokenizer

    return train_report_tokenizer(reports, vocab_size=args.local_vocab_size)


def build(args, train_reports: list[str], tokenizer=None) -> tuple[TamerModel, TamerProcessor]:
    """A randomly initialised TAMER of `--model_preset` with a frozen report encoder and the matching processor.

    `tokenizer` (local text encoder only): reuse one already trained (the loop trains it once and shares it).
    """
    fields = model_fields(args)
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        from ..text import small_text_config, train_report_tokenizer

        if tokenizer is None:
            tokenizer = train_report_tokenizer(train_reports, vocab_size=args.local_vocab_size)
        text_config = small_text_config(tokenizer, hidden_size=args.local_text_hidden_size,
                                        num_layers=args.local_text_layers, num_heads=max(1, args.local_text_hidden_size // 32),
                                        max_positions=max(args.max_text_length, 128))
        text_config.initializer_range = args.local_text_init_range
        model = TamerModel(TamerConfig(text_config=text_config.to_dict(), **fields))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.text_encoder)
        model = TamerModel.from_text_pretrained(args.text_encoder, **fields)
    if args.text_encoder == LOCAL_TEXT_ENCODER:
        make_bag_of_words_encoder(model.text_model, tokenizer)
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




class TamerCollator:
    """Rows {ecg (12, T) mV, report_id} -> the model's inputs: `input_values` (B, 12, 5000) through the feature
    extractor (the same transform as inference), and the reports as cached frozen-encoder features or as tokens;
    `report_ids` too when duplicate reports are masked out of RADA's negatives."""

    def __init__(self, processor: TamerProcessor, reports: list[str], sampling_rate: float,
                 text_cache: TextFeatureCache | None = None, mask_duplicate_reports: bool = False):
        self.processor, self.reports, self.sampling_rate = processor, reports, sampling_rate
        self.text_cache, self.mask_duplicate_reports = text_cache, mask_duplicate_reports

    def __call__(self, rows: list[dict]) -> dict:
        report_ids = torch.tensor([int(row["report_id"]) for row in rows])
        batch = {"input_values": ecg_input_values(self.processor.feature_extractor, rows, self.sampling_rate)}
        if self.text_cache is not None:
            batch["text_encoding"], batch["attention_mask"] = self.text_cache.lookup(report_ids, "cpu")
        else:
            tokens = self.processor(text=[self.reports[i] for i in report_ids.tolist()])
            batch.update(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        if self.mask_duplicate_reports:
            batch["report_ids"] = report_ids  # identical reports are not RADA negatives of each other
        return batch


def make_collator(args, model: TamerModel, processor: TamerProcessor, reports: list[str], accelerator) -> TamerCollator:
    """The collator, with the frozen report features cached per unique report when they fit `--text_cache_max_gb`."""
    text_cache = None
    if args.cache_text_features != "never":
        cache_gb = TextFeatureCache.estimated_gb(processor.tokenizer, reports, model.config.text_config.hidden_size,
                                                 args.max_text_length)
        if args.cache_text_features == "always" or cache_gb <= args.text_cache_max_gb:
            text_cache = TextFeatureCache(model, processor.tokenizer, reports, args.max_text_length)
    accelerator.print(f"Report features: {'cached' if text_cache is not None else 'computed per batch'}.")
    return TamerCollator(processor, reports, args.sampling_rate, text_cache, args.mask_duplicate_reports)


FAMILY = ModelFamily(
    model_type=TamerConfig.model_type,
    paper="TAMER: tri-modal contrastive alignment of ECG waveform, STFT spectrogram and report (Zhou et al., CVPR 2026)",
    config_class=TamerConfig,
    model_class=TamerModel,
    processor_class=TamerProcessor,
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
    extra_auto_models={"AutoModelForAudioClassification": TamerForECGClassification},
)

__all__ = ["FAMILY", "TamerCollator", "TextFeatureCache", "build", "make_bag_of_words_encoder", "make_collator",
           "PAPER_TEXT_ENCODER", "LOCAL_TEXT_ENCODER"]

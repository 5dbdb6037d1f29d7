"""Tiny models, tokenizers and processors built locally, for tests and examples that must run offline."""

import torch

from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.modeling_tamer import TamerModel
from .modeling.processing_tamer import TamerProcessor
from .presets import preset_config
from .text import small_text_config, train_report_tokenizer


def tiny_tokenizer(texts=(), vocab_size: int = 300):
    return train_report_tokenizer(texts, vocab_size=vocab_size)


def tiny_config(tokenizer=None, **overrides):
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    text_config = small_text_config(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_positions=128)
    return preset_config("tiny", text_config=text_config.to_dict(), **overrides)


def tiny_model_and_processor(seed: int = 0, texts=(), **overrides):
    """A randomly initialised tiny TamerModel (eval mode) and its matching processor."""
    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = TamerModel(tiny_config(tokenizer, **overrides)).eval()
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer, max_text_length=64)
    return model, processor

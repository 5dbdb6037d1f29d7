"""Checks of the tensors a model family's `forward` receives, written once for every family.

The feature extractor and the tokenizer validate raw input at the boundary; these checks catch what reaches a model
without them (a hand-built batch, a cached tensor, a corrupt shard): wrong dtypes, NaN/Inf, token ids outside the
vocabulary or past the position table, reports without a single attended token. Each is a few reductions per call
and raises our ValueError / TypeError naming the input, instead of NaN embeddings or an IndexError from inside torch.
They are skipped while torch.compile or torch.jit traces the model (data-dependent checks break the graph).

Flat, remote-code file: only torch and transformers.
"""

import torch
from transformers.utils import is_torchdynamo_compiling


def is_tracing() -> bool:
    return torch.jit.is_tracing() or is_torchdynamo_compiling()


def rows_where(bad_rows: torch.Tensor, limit: int = 5) -> str:
    """'rows 0, 3' for a (B,) bool tensor: the batch rows a message names (at most `limit`)."""
    rows = bad_rows.nonzero().flatten().tolist()
    shown = ", ".join(str(row) for row in rows[:limit]) + (", ..." if len(rows) > limit else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def check_finite(name: str, values: torch.Tensor) -> None:
    """ValueError naming `name` and the batch rows when a floating-point tensor holds NaN or +-Inf."""
    if is_tracing() or not values.is_floating_point():
        return
    finite = torch.isfinite(values)
    if not finite.all():
        bad_rows = ~finite.flatten(1).all(dim=1) if values.ndim > 1 else ~finite
        raise ValueError(f"{name} holds NaN or Inf values (batch {rows_where(bad_rows)}): the model would return NaN "
                         "for them. Repair or drop those records (the feature extractor interpolates short gaps).")


def check_input_values(input_values, num_leads: int, num_samples: int, dtype: torch.dtype) -> torch.Tensor:
    """The ECG batch a model reads, checked: a floating-point tensor (B, num_leads, num_samples) of finite samples.

    Returns it in the model's `dtype`: float64 or half-precision input is cast (the weights decide the precision, as
    a processor's float32 output does on a half-precision model). Integer, boolean or complex input is a TypeError: it
    is not the feature extractor's normalised signal (raw ADC counts, say) and casting it would hide that.
    """
    expected = (num_leads, num_samples)
    if not torch.is_tensor(input_values) or input_values.ndim != 3 or tuple(input_values.shape[1:]) != expected:
        shape = tuple(input_values.shape) if torch.is_tensor(input_values) else type(input_values).__name__
        raise ValueError(
            f"input_values must be a tensor of shape (batch, {expected[0]}, {expected[1]}), got {shape}. "
            "Use the processor's feature extractor to resample, crop/pad and scale raw ECGs."
        )
    if not input_values.is_floating_point():
        raise TypeError(
            f"input_values must hold floating-point samples (the feature extractor's scaled ECGs), got "
            f"{input_values.dtype}. Pass the processor's output, or convert with .float() if the values are already "
            "scaled."
        )
    check_finite("input_values", input_values)
    return input_values.to(dtype)


def check_text_inputs(input_ids, attention_mask, text_config, name: str = "input_ids") -> None:
    """Token ids (B, L) inside the text encoder's vocabulary and position table, and an attention mask of the same
    shape that attends to at least one token in every row.

    The position limit is `text_config.max_position_embeddings` (BERT's learned positions); a T5 encoder has relative
    position buckets and no such limit, so only its vocabulary is checked."""
    if not torch.is_tensor(input_ids) or input_ids.ndim != 2:
        shape = tuple(input_ids.shape) if torch.is_tensor(input_ids) else type(input_ids).__name__
        raise ValueError(f"{name} must be a tensor of shape (batch, tokens), got {shape}.")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {input_ids.dtype}.")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but {name} has "
                         f"{tuple(input_ids.shape)}: give one mask entry per token.")
    max_positions = getattr(text_config, "max_position_embeddings", None)
    if max_positions is not None and input_ids.shape[1] > max_positions:
        raise ValueError(f"{name} has {input_ids.shape[1]} tokens per row, more than the text encoder's "
                         f"{max_positions} positions (max_position_embeddings): tokenize with truncation=True and "
                         f"max_length={max_positions} or less.")
    if is_tracing():
        return
    vocab_size = text_config.vocab_size
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        bad_rows = ((input_ids < 0) | (input_ids >= vocab_size)).any(dim=1)
        raise ValueError(f"{name} holds token ids outside the text encoder's vocabulary [0, {vocab_size}) (batch "
                         f"{rows_where(bad_rows)}, ids {input_ids.min().item()}..{input_ids.max().item()}): were they "
                         "made by this model's tokenizer?")
    if attention_mask is not None:
        check_attention_mask(attention_mask)


def check_attention_mask(attention_mask: torch.Tensor) -> None:
    """ValueError naming the rows of an attention mask (B, L) that attend to no token at all."""
    if is_tracing():
        return
    empty = ~(attention_mask != 0).any(dim=1)  # (B,)
    if empty.any():
        raise ValueError(f"attention_mask attends to no token in batch {rows_where(empty)}: every report or prompt "
                         "needs at least one token (an all-zero row would be encoded as if it were valid).")


__all__ = ["check_attention_mask", "check_finite", "check_input_values", "check_text_inputs", "is_tracing"]

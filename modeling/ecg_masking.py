"""Masking shared by the masked-modelling families (C-MELT, CG-DMER): whole leads, ECG tokens, report tokens.

Each function draws its randomness from `generator` (torch's global RNG when None), so a data collator that calls
them is reproducible under `torch.manual_seed` and resumes exactly from a checkpointed RNG state.

Flat, depending only on torch: copied next to every saved checkpoint whose files import it.
"""

from typing import NamedTuple

import torch

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


def random_lead_mask(
    input_values: torch.Tensor, probability: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero every lead of every record independently with `probability` (random lead masking, Oh et al. 2022).

    input_values (B, C, T) -> (masked copy (B, C, T), dropped (B, C) bool, True where the lead was zeroed).
    """
    batch, leads = input_values.shape[:2]
    dropped = torch.rand(batch, leads, generator=generator) < probability  # (B, C), drawn on the CPU
    dropped = dropped.to(input_values.device)
    return input_values.masked_fill(dropped[:, :, None], 0.0), dropped


class TokenMask(NamedTuple):
    """An MAE-style random token mask of a (B, L) token sequence that keeps K tokens per sample.

    keep_indices (B, K): the kept token positions, in the random order that selected them.
    mask (B, L) float: 1 on the masked (hidden) tokens, 0 on the kept ones, in the original order.
    restore_indices (B, L): `torch.gather(cat(kept, masked), 1, restore_indices)` puts the shuffled sequence back
        in the original order.
    """

    keep_indices: torch.Tensor
    mask: torch.Tensor
    restore_indices: torch.Tensor


def num_kept_tokens(num_tokens: int, mask_ratio: float) -> int:
    """int(L * (1 - ratio)): 78 of 312 tokens at ratio 0.75 (MAE's rounding)."""
    return int(num_tokens * (1 - mask_ratio))


def random_token_mask(
    batch_size: int,
    num_tokens: int,
    mask_ratio: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TokenMask:
    """Keep `num_kept_tokens(L, ratio)` tokens per sample, chosen uniformly at random (MAE's per-sample shuffle: sort
    i.i.d. noise, keep the lowest). Pass `noise` (B, L) to fix the choice (e.g. drawn by a data collator), otherwise it
    is drawn from `generator` on the CPU and moved to `device`."""
    if noise is None:
        noise = torch.rand(batch_size, num_tokens, generator=generator).to(device)  # (B, L)
    elif tuple(noise.shape) != (batch_size, num_tokens):
        raise ValueError(f"noise must have shape ({batch_size}, {num_tokens}), got {tuple(noise.shape)}.")
    num_kept = num_kept_tokens(num_tokens, mask_ratio)
    shuffle = torch.argsort(noise, dim=1)  # (B, L): ascending noise, the first num_kept are kept
    restore_indices = torch.argsort(shuffle, dim=1)  # (B, L)
    mask = torch.ones(batch_size, num_tokens, device=noise.device)
    mask[:, :num_kept] = 0
    mask = torch.gather(mask, 1, restore_indices)  # (B, L) in the original order
    return TokenMask(shuffle[:, :num_kept], mask, restore_indices)


def keep_tokens(tokens: torch.Tensor, keep_indices: torch.Tensor) -> torch.Tensor:
    """tokens (B, L, D), keep_indices (B, K) -> (B, K, D)."""
    return torch.gather(tokens, 1, keep_indices[:, :, None].expand(-1, -1, tokens.shape[-1]))


def unshuffle_tokens(kept: torch.Tensor, fill: torch.Tensor, restore_indices: torch.Tensor) -> torch.Tensor:
    """Put kept tokens (B, K, D) and a fill token (1, 1, D) for the masked ones back in the original order (B, L, D)."""
    batch, num_kept, dim = kept.shape
    num_tokens = restore_indices.shape[1]
    shuffled = torch.cat([kept, fill.expand(batch, num_tokens - num_kept, dim).to(kept.dtype)], dim=1)  # (B, L, D)
    return torch.gather(shuffled, 1, restore_indices[:, :, None].expand(-1, -1, dim))


def mask_tokens_for_mlm(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    probability: float,
    special_tokens_mask: torch.Tensor | None = None,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-language-modelling corruption (as `transformers.DataCollatorForLanguageModeling`).

    Each token that is not special (`special_tokens_mask` (B, L), 1 on padding, EOS, ...) is selected with
    `probability`; of the selected, `mask_replace_prob` become `mask_token_id`, `random_replace_prob` a uniformly
    random id in [0, vocab_size), the rest stay as they are. Returns (corrupted ids (B, L), labels (B, L): the original
    id at selected positions, IGNORE_INDEX elsewhere). Works for any tokenizer with a mask token; T5 tokenizers have
    none, so C-MELT passes a sentinel (`<extra_id_0>`).
    """
    if mask_replace_prob + random_replace_prob > 1:
        raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1.")
    chances = torch.full(input_ids.shape, probability)
    if special_tokens_mask is not None:
        chances.masked_fill_(special_tokens_mask.bool().cpu(), 0.0)
    selected = torch.bernoulli(chances, generator=generator).bool()  # (B, L)
    to_mask = torch.bernoulli(torch.full(input_ids.shape, mask_replace_prob), generator=generator).bool() & selected
    # of what is left, random_replace_prob / (1 - mask_replace_prob) become random tokens
    rest = 1.0 - mask_replace_prob
    random_share = random_replace_prob / rest if rest > 0 else 0.0
    to_randomise = torch.bernoulli(torch.full(input_ids.shape, random_share), generator=generator).bool()
    to_randomise &= selected & ~to_mask
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    selected, to_mask, to_randomise = (t.to(input_ids.device) for t in (selected, to_mask, to_randomise))
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    corrupted = input_ids.masked_fill(to_mask, mask_token_id)
    corrupted = torch.where(to_randomise, random_ids.to(input_ids.device, input_ids.dtype), corrupted)
    return corrupted, labels


__all__ = [
    "IGNORE_INDEX",
    "TokenMask",
    "keep_tokens",
    "mask_tokens_for_mlm",
    "num_kept_tokens",
    "random_lead_mask",
    "random_token_mask",
    "unshuffle_tokens",
]

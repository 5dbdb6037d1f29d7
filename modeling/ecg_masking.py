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



# ----------------------------------------------------------------------------------------------------------------------
# Spatio-temporal masking of a lead x time patch grid (CG-DMER)


class SpatioTemporalMask(NamedTuple):
    """A mask over the (lead, time) patch grid of a batch, flattened lead-major (patch index = lead * T + t), with the
    same number of masked patches in every sample (so the kept patches stack into one (B, K, D) tensor).

    keep_indices (B, K): kept patch indices in ascending order. mask (B, L * T) float: 1 = masked.
    restore_indices (B, L * T): as `TokenMask` (`unshuffle_tokens` puts kept + fill tokens back in patch order).
    masked_leads (B, L) bool: leads masked whole. masked_times (B, T) bool: time columns masked in every lead.
    """

    keep_indices: torch.Tensor
    mask: torch.Tensor
    restore_indices: torch.Tensor
    masked_leads: torch.Tensor
    masked_times: torch.Tensor


def spatiotemporal_mask_counts(num_leads: int, num_times: int, mask_ratio: float, lead_ratio: float,
                               time_ratio: float) -> tuple[int, int, int]:
    """(whole leads, whole time columns, masked patches in all) of one sample's L x T grid.

    Leads: round(lead_ratio * L); columns: round(time_ratio * T); patches: L * T minus MAE's kept count
    `num_kept_tokens(L * T, mask_ratio)`. Raises a ValueError when the whole leads and columns alone exceed it.
    """
    for name, value in (("mask_ratio", mask_ratio), ("lead_ratio", lead_ratio), ("time_ratio", time_ratio)):
        if not 0 <= value < 1 if name == "mask_ratio" else not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1{')' if name == 'mask_ratio' else ']'}, got {value}.")
    leads, times = int(lead_ratio * num_leads + 0.5), int(time_ratio * num_times + 0.5)
    total = num_leads * num_times - num_kept_tokens(num_leads * num_times, mask_ratio)
    structured = leads * num_times + times * num_leads - leads * times  # |whole leads U whole columns|
    if structured > total:
        raise ValueError(
            f"{leads} whole lead(s) and {times} whole time column(s) mask {structured} of {num_leads} x {num_times} "
            f"patches, more than mask_ratio={mask_ratio} allows ({total}); lower lead_ratio / time_ratio."
        )
    return leads, times, total


def random_time_spans(batch_size: int, num_times: int, num_columns: int, span: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T) bool: `num_columns` time columns per sample as non-overlapping contiguous spans of `span` columns (the
    last one shorter when `span` does not divide `num_columns`), placed uniformly at random (stars and bars: the spans
    and T - num_columns free columns in a random order)."""
    if span < 1:
        raise ValueError(f"span must be at least 1, got {span}.")
    lengths = [span] * (num_columns // span) + ([num_columns % span] if num_columns % span else [])
    if not lengths:
        return torch.zeros(batch_size, num_times, dtype=torch.bool)
    num_spans, free = len(lengths), num_times - num_columns
    slots = torch.argsort(torch.rand(batch_size, free + num_spans, generator=generator), dim=1)[:, :num_spans]
    slots = torch.sort(slots, dim=1).values  # (B, n): where each span sits among spans and free columns
    order = torch.argsort(torch.rand(batch_size, num_spans, generator=generator), dim=1)  # (B, n): span order
    span_lengths = torch.tensor(lengths)[order]  # (B, n)
    starts = slots - torch.arange(num_spans) + torch.cumsum(span_lengths, dim=1) - span_lengths  # (B, n)
    times = torch.arange(num_times)[None, None, :]  # (1, 1, T)
    inside = (times >= starts[:, :, None]) & (times < (starts + span_lengths)[:, :, None])  # (B, n, T)
    return inside.any(dim=1)


def token_mask_from_mask(mask: torch.Tensor) -> TokenMask:
    """A `TokenMask` from a (B, N) 0/1 mask with the same number of masked tokens in every row: kept tokens in
    ascending order, then the masked ones (a stable sort, so the result depends on the mask only)."""
    masked = mask.bool()
    counts = masked.sum(dim=1)
    if len(counts) and not bool((counts == counts[0]).all()):
        raise ValueError(f"every sample must mask the same number of patches, got {sorted(set(counts.tolist()))}.")
    num_kept = mask.shape[1] - (int(counts[0]) if len(counts) else 0)
    shuffle = torch.argsort(masked.to(torch.uint8), dim=1, stable=True)  # (B, N): kept first
    restore_indices = torch.argsort(shuffle, dim=1)
    return TokenMask(shuffle[:, :num_kept], masked.to(torch.float32), restore_indices)


def spatiotemporal_mask(
    batch_size: int,
    num_leads: int,
    num_times: int,
    mask_ratio: float,
    lead_ratio: float = 0.0,
    time_ratio: float = 0.0,
    time_span: int = 1,
    generator: torch.Generator | None = None,
) -> SpatioTemporalMask:
    """Mask the L x T patch grid of each sample across leads and time (CG-DMER's spatio-temporal masking):

    1. whole leads: round(lead_ratio * L) leads, uniformly at random (spatial: a lead is recovered from the others);
    2. whole time columns in every lead: round(time_ratio * T) columns as contiguous spans of `time_span` patches
       (temporal: a stretch of the record is recovered from its context);
    3. random patches among the rest until exactly L * T - int(L * T * (1 - mask_ratio)) patches are masked (MAE's
       count), the same in every sample.

    Every draw comes from `generator` (torch's global RNG when None), on the CPU.
    """
    leads, times, total = spatiotemporal_mask_counts(num_leads, num_times, mask_ratio, lead_ratio, time_ratio)
    lead_order = torch.argsort(torch.rand(batch_size, num_leads, generator=generator), dim=1)  # (B, L)
    masked_leads = torch.zeros(batch_size, num_leads, dtype=torch.bool)
    masked_leads.scatter_(1, lead_order[:, :leads], True)
    masked_times = random_time_spans(batch_size, num_times, times, time_span, generator)  # (B, T)
    structured = (masked_leads[:, :, None] | masked_times[:, None, :]).flatten(1)  # (B, L * T)
    # the structured patches sort first (score -1 < any uniform draw); the lowest `total` scores are masked
    score = torch.rand(batch_size, num_leads * num_times, generator=generator).masked_fill(structured, -1.0)
    chosen = torch.argsort(score, dim=1)[:, :total]
    mask = torch.zeros(batch_size, num_leads * num_times).scatter_(1, chosen, 1.0)
    keep_indices, mask, restore_indices = token_mask_from_mask(mask)
    return SpatioTemporalMask(keep_indices, mask, restore_indices, masked_leads, masked_times)


__all__ = [
    "IGNORE_INDEX",
    "SpatioTemporalMask",
    "TokenMask",
    "keep_tokens",
    "mask_tokens_for_mlm",
    "num_kept_tokens",
    "random_lead_mask",
    "random_time_spans",
    "random_token_mask",
    "spatiotemporal_mask",
    "spatiotemporal_mask_counts",
    "token_mask_from_mask",
    "unshuffle_tokens",
]

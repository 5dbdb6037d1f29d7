"""Contrastive losses shared by the model families, each written once and computed exactly across processes.

`gather` arguments take a function such as `tamer_hf.distributed.gather_with_grad`: it maps this process's rows to the
rows of the global batch (with gradients) and the offset of this process's rows, so that each process scores its own
rows against the whole global batch (open_clip's `local_loss=True`); averaged over processes by DDP, loss and
gradients equal those of one process holding the whole batch.
"""

from typing import Callable

import torch
import torch.nn.functional as F

# A gather function maps this process's (n, D) embeddings to the (N, D) embeddings of the global batch (with
# gradients) and returns the offset of this process's rows inside it. `None` means a single process.
GatherFn = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


def info_nce(logits: torch.Tensor, targets: torch.Tensor, exclude_positive: bool) -> torch.Tensor:
    """-log softmax of the positive per row; with `exclude_positive` the denominator sums over j != i only
    (a row left with no negative at all then contributes 0)."""
    if not exclude_positive:
        return F.cross_entropy(logits, targets)
    positive = logits.gather(1, targets[:, None])[:, 0]
    negatives = torch.logsumexp(logits.scatter(1, targets[:, None], float("-inf")), dim=1)
    return torch.where(torch.isfinite(negatives), negatives - positive, torch.zeros_like(positive)).mean()


def contrastive_loss(
    embeds_a: torch.Tensor,
    embeds_b: torch.Tensor,
    temperature: float,
    exclude_positive: bool = False,
    gather: GatherFn | None = None,
    sample_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_CL: symmetric InfoNCE on cosine similarity, the mean of the a→b and b→a directions (paper Eq. for L_CL).

    Every term (RLCA, UECR, RADA) uses this one function. With `gather`, each process scores its own rows against the
    whole global batch, which gives the same gradient as one process holding the whole batch. With `sample_ids` (n,),
    pairs whose ids are equal (e.g. two ECGs with the identical report) are false negatives and leave the
    denominators.
    """
    embeds_a = F.normalize(embeds_a, dim=-1)
    embeds_b = F.normalize(embeds_b, dim=-1)
    all_a, all_b, offset = embeds_a, embeds_b, 0
    if gather is not None:
        all_a, offset = gather(embeds_a)
        all_b, _ = gather(embeds_b)
    targets = torch.arange(embeds_a.shape[0], device=embeds_a.device) + offset
    logits_a = embeds_a @ all_b.T / temperature  # (n, N)
    logits_b = embeds_b @ all_a.T / temperature  # (n, N)
    if sample_ids is not None:
        all_ids = gather(sample_ids)[0] if gather is not None else sample_ids  # (N,)
        false_negatives = sample_ids[:, None] == all_ids[None, :]  # (n, N)
        false_negatives[torch.arange(len(targets), device=targets.device), targets] = False
        logits_a = logits_a.masked_fill(false_negatives, float("-inf"))
        logits_b = logits_b.masked_fill(false_negatives, float("-inf"))
    return (info_nce(logits_a, targets, exclude_positive) + info_nce(logits_b, targets, exclude_positive)) / 2


__all__ = ["GatherFn", "contrastive_loss", "info_nce"]

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


def check_pairs(num_pairs: int, loss_name: str) -> None:
    """A batch-level loss over one pair has no negatives: InfoNCE is exactly 0, SigLIP only pulls the pair together,
    a batch-centred orthogonality is 0. `num_pairs` counts the global batch (after `gather`), so two processes with
    one pair each are fine."""
    if num_pairs < 2:
        raise ValueError(f"{loss_name} needs at least 2 ECG-report pairs in the batch (over all processes), got "
                         f"{num_pairs}: with one pair it has no negatives to contrast with. Use a batch of 2 or more, "
                         "or return_loss=False to compute embeddings only.")


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
    check_pairs(all_b.shape[0], "The contrastive loss (InfoNCE)")
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



def siglip_loss(
    embeds_a: torch.Tensor,
    embeds_b: torch.Tensor,
    logit_scale: torch.Tensor | float = 1.0,
    logit_bias: torch.Tensor | float | None = None,
    is_aligned: torch.Tensor | None = None,
    ids_a: torch.Tensor | None = None,
    ids_b: torch.Tensor | None = None,
    reduction: str = "mean",
    gather: GatherFn | None = None,
) -> torch.Tensor:
    """Sigmoid pairwise loss (SigLIP, Zhai et al. 2023; C-MELT's "Siglep", paper Eq. 4) on the given embeddings.

    logits_ij = logit_scale * a_i . b_j (+ logit_bias), loss_ij = -log sigmoid(y_ij * logits_ij). The embeddings are
    used as given (normalise them first for SigLIP's cosine form; C-MELT's code does not). Labels y_ij in {-1, +1}:
    with `ids_a` and `ids_b` (n,), y_ij = +1 exactly when ids_a[i] == ids_b[j] (e.g. the report an ECG belongs to and
    the report a row carries, so identical reports are positives); otherwise -1 off the diagonal and 2 * is_aligned - 1
    on it (`is_aligned` (n,) 0/1, default all 1: swapped-in negative reports are negatives of their own row).
    `reduction="mean"` averages over all B x B pairs (C-MELT code); `"sum"` sums each row and averages over rows
    (sum / B, C-MELT paper Eq. 4 and the SigLIP paper).

    With `gather`, this process's rows are scored against the texts of the global batch, so every pair is counted by
    exactly one process and the mean over processes is the loss of one process holding the whole batch.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    all_b, offset = (embeds_b, 0) if gather is None else gather(embeds_b)
    check_pairs(all_b.shape[0], "The SigLIP loss")
    rows = torch.arange(embeds_a.shape[0], device=embeds_a.device)
    logits = logit_scale * (embeds_a @ all_b.T)  # (n, N)
    if logit_bias is not None:
        logits = logits + logit_bias
    if ids_a is not None and ids_b is not None:
        all_ids_b = ids_b if gather is None else gather(ids_b)[0]  # (N,)
        labels = (ids_a[:, None] == all_ids_b[None, :]).to(logits.dtype) * 2 - 1  # (n, N)
    else:
        labels = -torch.ones_like(logits)
        diagonal = torch.ones_like(rows, dtype=logits.dtype) if is_aligned is None else is_aligned.to(logits.dtype)
        labels[rows, rows + offset] = diagonal * 2 - 1
    pair_losses = -F.logsigmoid(labels * logits)  # (n, N)
    return pair_losses.mean() if reduction == "mean" else pair_losses.sum(dim=1).mean()


__all__ = ["GatherFn", "check_pairs", "contrastive_loss", "info_nce", "siglip_loss"]

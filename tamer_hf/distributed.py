"""Gathering embeddings across processes for the contrastive losses, with gradients.

`accelerator.gather` returns a tensor without autograd history (hf_conventions §5.2, accelerate#1154), so a loss built
on it gives each process only 1/W of the gradient of the negatives it holds. `gather_with_grad` uses torch's
differentiable all-gather instead; with it, the model's `contrastive_loss` (local rows scored against the global batch,
as open_clip's `local_loss=True`) averaged over W processes by DDP equals the loss and gradient of one process holding
the whole batch.
"""

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_autograd


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(n, D) rows of this process -> ((W * n, D) rows of all processes in rank order, offset of this process's rows).

    Every process must pass the same n (training uses `drop_last=True`, so batches are even). Outside a process group
    this is the identity with offset 0.
    """
    if not is_distributed():
        return tensor, 0
    # The public differentiable all-gather (in torch long before our floor torch>=2.2; its backward sends each
    # process the gradient of its own rows summed over all processes). torch 2.13 flags it with a FutureWarning that
    # points to `torch.distributed._functional_collectives`, a private module whose autograd support is recent; we
    # keep the public function and silence only that notice, which a user can do nothing about.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                                category=FutureWarning)
        pieces = dist_autograd.all_gather(tensor.contiguous())  # W tensors (n, D), differentiable
    return torch.cat(pieces), dist.get_rank() * tensor.shape[0]


def end_training(accelerator) -> None:
    """`accelerator.end_training()` (trackers closed, process group destroyed) once the DDP wrapper is gone.

    Callers first drop their own references to the prepared model (`model = None`). The order matters with gloo
    (CPU): when DDP's reducer holds the last reference to the process group, the group's destructor joins gloo's
    worker thread without releasing the GIL, while that thread may still need the GIL to free the tensors of the last
    collective, and the process hangs at exit (pytorch/pytorch#56297; one two-process run in about ten stalled so
    here). With the reducer freed first, the group dies in `destroy_process_group`, whose destructor releases the
    GIL."""
    accelerator.free_memory()  # the accelerator's own references to the prepared objects, then a gc pass
    accelerator.end_training()


__all__ = ["end_training", "gather_with_grad", "is_distributed"]

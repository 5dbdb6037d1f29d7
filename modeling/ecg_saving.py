"""Saved weight files with the permissions of any new file, for every family's `save_pretrained`.

safetensors (0.7 and later) writes each file through a private temporary file and renames it, so `model.safetensors`
ends up mode 0600 whatever the umask: a model folder shared on a cluster or served by another user would be readable
by its owner only. Every family's PreTrainedModel inherits `NormalPermissionsMixin` (put it first in the bases).

Flat, remote-code file: only the standard library.
"""

import os
from pathlib import Path


def give_umask_permissions(paths) -> None:
    """chmod each file to what `open(path, "w")` would have created under the current umask (0644 under 022)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in paths:
        os.chmod(path, 0o666 & ~umask)


class NormalPermissionsMixin:
    def save_pretrained(self, save_directory, *args, **kwargs):
        result = super().save_pretrained(save_directory, *args, **kwargs)
        give_umask_permissions(Path(save_directory).glob("*.safetensors"))
        return result


__all__ = ["NormalPermissionsMixin", "give_umask_permissions"]

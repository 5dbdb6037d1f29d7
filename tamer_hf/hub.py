"""Uploading a saved model folder (any family) to the Hugging Face Hub (huggingface_hub's HTTP API; no git)."""

from __future__ import annotations

import contextlib
import os

from huggingface_hub import HfApi, constants

# What pretrain.py writes next to the model that is not part of it.
TRAINING_ARTIFACTS = ("checkpoints", "logs")


def model_files(folder: str | os.PathLike) -> list[str]:
    """The files of the saved model (relative paths): everything in `folder` except training checkpoints and logs."""
    folder = os.fspath(folder)
    files = []
    for root, dirs, names in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in TRAINING_ARTIFACTS and not d.startswith(".")]
        files += [os.path.normpath(os.path.join(rel_root, name)) for name in names if not name.startswith(".")]
    return sorted(files)


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, private: bool | None = None, token: str | None = None,
                       commit_message: str = "Upload ECG model", revision: str | None = None,
                       api: HfApi | None = None, license: str | None = None) -> list[str]:
    """Create `repo_id` if needed and upload exactly the model files of `folder` plus its model card. The card
    (README.md) is (re)written from `training_summary.json` and the `tamer eval` results under `folder/eval/`, with
    `repo_id` in its usage lines, unless it is the user's own (written by hand, or with tamer-hf's marker line
    deleted). Returns the uploaded paths."""
    from .model_card import LICENSE, write_model_card, written_here

    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"{folder} has no config.json: not a saved model folder (run examples/pretrain.py).")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        raise FileNotFoundError(f"{folder} has no model.safetensors.")
    card = os.path.join(folder, "README.md")
    if not os.path.isfile(card) or written_here(card):
        write_model_card(folder, repo_id=repo_id, license=license or LICENSE)
    files = model_files(folder)
    api = api or HfApi(token=token)
    with reaching_the_hub(f"upload {folder} to {repo_id}"):
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=folder, allow_patterns=files, commit_message=commit_message,
                          revision=revision, repo_type="model")
    return files


# huggingface_hub's transport errors by class name: httpx's or httpx2's TransportError (huggingface_hub >= 1, which
# of the two depends on its version), requests' ConnectionError and Timeout (< 1).
TRANSPORT_ERRORS = ("TransportError", "ConnectionError", "Timeout")


@contextlib.contextmanager
def reaching_the_hub(action: str):
    """Turn "the Hub cannot be reached" (offline mode, no network, a refused or timed-out connection, each with a
    35-70 line traceback) into one ConnectionError saying what could not be done; `tamer_hf.commands.run` prints it
    as one line, exit status 1."""
    try:
        yield
    except Exception as error:
        if not any(kind.__name__ in TRANSPORT_ERRORS for kind in type(error).__mro__):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if constants.HF_HUB_OFFLINE:
            reason = "offline mode is on (HF_HUB_OFFLINE=1); unset it to upload"
        raise ConnectionError(f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to {action}: {reason}") \
            from error


__all__ = ["push_folder_to_hub", "model_files", "reaching_the_hub"]

"""Upload a prepared dataset folder to the Hugging Face Hub as it is: its README.md card, whose `configs` point the Hub
(and `load_dataset(repo_id)`) at the Arrow shards, the shards and the split state files. The class names travel in the
shards' schema and in the card's `dataset_info`, so the Hub copy loads with its labels named.

    python -m datasets_scripts.push --dataset_dir data/ptbxl_super --repo_id org/ptbxl-super [--private]

MIMIC-IV-ECG preparations are refused unless `--private` (the card says why).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from huggingface_hub import HfApi

from tamer_hf.hub import reaching_the_hub

from . import cli
from .card import CARD_NAME
from .common import SPLITS, dataset_metadata
from .log import get_logger

logger = get_logger(__name__)
PRIVATE_ONLY_SOURCES = ("mimic_iv_ecg",)


def dataset_files(folder) -> list[str]:
    """The files of a prepared folder that make the dataset (relative paths): the card, `dataset_dict.json`, each
    split's Arrow shards and state files, and the preparation summary; not the resume manifest."""
    folder = Path(folder)
    if not (folder / CARD_NAME).is_file() or not (folder / "dataset_dict.json").is_file():
        raise FileNotFoundError(f"{folder} has no {CARD_NAME} or dataset_dict.json: not a folder written by a "
                                "datasets_scripts builder")
    files = [CARD_NAME, "dataset_dict.json", "preparation_summary.json"]
    for split in SPLITS:
        files += sorted(str(path.relative_to(folder)) for path in (folder / split).glob("*.arrow"))
        files += [f"{split}/dataset_info.json", f"{split}/state.json"]
    return [name for name in files if (folder / name).is_file()]


def push_dataset_to_hub(folder, repo_id: str, private: bool | None = None, token: str | None = None,
                        api: HfApi | None = None) -> list[str]:
    """Create the dataset repository `repo_id` if needed and upload the dataset files of `folder`; returns them."""
    import datasets

    files = dataset_files(folder)
    source = dataset_metadata(datasets.load_from_disk(str(folder))).get("tamer_source")
    if source in PRIVATE_ONLY_SOURCES and not private:
        raise ValueError(f"{folder} is a {source} preparation (credentialed data): push it only with private=True "
                         "(--private)")
    api = api or HfApi(token=token)
    with reaching_the_hub(f"upload {folder} to the dataset repository {repo_id}"):
        api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder), allow_patterns=files,
                          commit_message="Upload dataset prepared with datasets_scripts")
    logger.info(f"uploaded {len(files)} files of {folder} to the dataset repository {repo_id}")
    return files


def main(argv=None):
    parser = cli.ArgumentParser(description="Upload a prepared dataset folder (with its card) to the Hub.")
    parser.add_argument("--dataset_dir", required=True, help="output_dir of a datasets_scripts builder")
    parser.add_argument("--repo_id", required=True, help="owner/name of the dataset repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    cli.add_verbosity_argument(parser)
    args = cli.parse_args(parser, argv)
    return push_dataset_to_hub(args.dataset_dir, args.repo_id, args.private or None, args.token)


if __name__ == "__main__":
    cli.run(main)

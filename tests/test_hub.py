"""`examples/push_to_hub.py` uploads exactly the saved model files plus the model card; only the Hub HTTP API
(`HfApi.create_repo` / `HfApi.upload_folder`) is mocked. The folder is a real pretrain.py output."""

import fnmatch
import os
import subprocess
import sys
from unittest import mock

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples"))


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "pretrain.py"), "--output_dir", str(out),
         "--synthetic_records", "120", "--batch_size", "8", "--max_steps", "2", "--checkpointing_steps", "1",
         "--eval_steps", "0", "--local_text_hidden_size", "32"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_push_to_hub_uploads_exactly_the_model_files_and_the_card(trained_folder):
    import push_to_hub

    saved = {name for name in os.listdir(trained_folder) if os.path.isfile(trained_folder / name)}
    assert {"config.json", "model.safetensors", "processor_config.json", "README.md", "modeling_tamer.py",
            "pipeline_zero_shot_ecg.py"} <= saved
    assert (trained_folder / "checkpoints").is_dir() and (trained_folder / "logs").is_dir()
    with mock.patch("huggingface_hub.HfApi.create_repo") as create_repo, \
            mock.patch("huggingface_hub.HfApi.upload_folder") as upload_folder:
        files = push_to_hub.main(["--model", str(trained_folder), "--repo_id", "org/tamer-ecg", "--private"])
    create_repo.assert_called_once()
    assert create_repo.call_args.kwargs["repo_id"] == "org/tamer-ecg"
    assert create_repo.call_args.kwargs["private"] is True
    upload = upload_folder.call_args.kwargs
    assert upload["repo_id"] == "org/tamer-ecg" and os.path.samefile(upload["folder_path"], trained_folder)
    # what huggingface_hub would send: every file under the folder that matches allow_patterns
    everything = [os.path.relpath(os.path.join(root, name), trained_folder)
                  for root, _, names in os.walk(trained_folder) for name in names]
    sent = {path for path in everything if any(fnmatch.fnmatch(path, p) for p in upload["allow_patterns"])}
    assert sent == saved == set(files)  # no checkpoint or log file leaks, nothing saved is left behind


def test_the_model_card_has_metadata_usage_and_metrics(trained_folder):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained_folder / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "other"
    assert "zero-shot-ecg-classification" in card.data.tags and "ecg" in card.data.tags
    assert card.data.metrics == ["roc_auc"]
    assert "AutoModel.from_pretrained" in card.text and "trust_remote_code=True" in card.text
    assert "Zero-shot macro-AUC on" in card.text  # the held-out synthetic test split was scored


def test_push_to_hub_writes_a_card_when_missing_and_refuses_a_non_model_folder(trained_folder, tmp_path):
    import shutil

    import push_to_hub

    copy = tmp_path / "copy"
    shutil.copytree(trained_folder, copy)
    os.remove(copy / "README.md")
    with mock.patch("huggingface_hub.HfApi.create_repo"), mock.patch("huggingface_hub.HfApi.upload_folder"):
        files = push_to_hub.main(["--model", str(copy), "--repo_id", "org/x"])
    assert "README.md" in files and (copy / "README.md").is_file()
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_to_hub.main(["--model", str(tmp_path / "nothing"), "--repo_id", "org/x"])

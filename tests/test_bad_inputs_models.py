"""Issue 14, the model side: every family's forward refuses what it cannot use with our ValueError / TypeError naming
the input (never NaN embeddings, a silent zero loss, or an IndexError from inside torch)."""

import pytest
import torch

from tamer_hf.families import get_family
from tamer_hf.testing_utils import TINY_BUILDERS, tiny_model_and_batch, tiny_model_and_processor

FAMILIES = sorted(TINY_BUILDERS)


# ----------------------------------------------------------------------------------------------------------------------
# a. a contrastive loss over one pair


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_loss_over_one_pair_is_refused(model_type):
    model, batch = tiny_model_and_batch(model_type)
    one_pair = {name: value[:1] for name, value in batch.items()}
    with pytest.raises(ValueError, match="at least 2 ECG-report pairs in the batch .*got 1"):
        model(**one_pair, return_loss=True)
    # embeddings of one record stay available
    with torch.no_grad():
        assert model(**one_pair).ecg_embeds.shape[0] == 1


def test_one_pair_per_process_is_fine_when_the_global_batch_has_two():
    """Two processes with one pair each: `gather` gives the loss the global batch, and the mean of the two processes'
    losses is the loss of one process holding both pairs (eval mode: no dropout, so every pass is deterministic)."""
    model, batch = tiny_model_and_batch("tamer")
    rows = [{name: value[index:index + 1] for name, value in batch.items()} for index in range(2)]

    def recorded(row):
        tensors = []

        def gather(tensor):
            tensors.append(tensor.detach())
            return torch.cat([tensor, tensor]), 0

        with torch.no_grad():
            model(**row, return_loss=True, gather=gather)
        return tensors

    peers = [recorded(row) for row in rows]

    def loss_of_process(rank):
        other = iter(peers[1 - rank])

        def gather(tensor):  # this process's rows in rank order with the other process's
            pieces = [tensor, next(other)] if rank == 0 else [next(other), tensor]
            return torch.cat(pieces), rank

        with torch.no_grad():
            return model(**rows[rank], return_loss=True, gather=gather)

    with torch.no_grad():
        whole = model(**batch, return_loss=True)
    per_process = [loss_of_process(rank) for rank in range(2)]
    for term in ("loss_rlca", "loss_uecr", "loss_rada", "loss_rgwr", "loss"):
        mean = (getattr(per_process[0], term) + getattr(per_process[1], term)) / 2
        torch.testing.assert_close(mean, getattr(whole, term), rtol=1e-5, atol=1e-6)
    assert per_process[0].loss_rada > 0


# ----------------------------------------------------------------------------------------------------------------------
# b. NaN / Inf


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_values_are_refused_naming_the_row(model_type, value):
    model, batch = tiny_model_and_batch(model_type)
    batch["input_values"][1, 3, 100] = value
    with pytest.raises(ValueError, match=r"input_values holds NaN or Inf values \(batch row 1\)"):
        model(**batch)
    with pytest.raises(ValueError, match="input_values holds NaN or Inf"):
        model.get_ecg_features(batch["input_values"])


def test_non_finite_mem_noise_is_refused():
    model, batch = tiny_model_and_batch("cmelt")
    noise = torch.rand(2, model.num_ecg_tokens)
    noise[0, 5] = float("nan")
    with pytest.raises(ValueError, match="mem_noise holds NaN or Inf"):
        model(**batch, mem_noise=noise, return_loss=True)


# ----------------------------------------------------------------------------------------------------------------------
# c. dtypes


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_cast_to_the_models(model_type, dtype):
    model, batch = tiny_model_and_batch(model_type)
    with torch.no_grad():
        reference = model.get_ecg_features(batch["input_values"])
        cast = model.get_ecg_features(batch["input_values"].to(dtype))
        output = model(**{**batch, "input_values": batch["input_values"].to(dtype)})
    assert cast.dtype == output.ecg_embeds.dtype == torch.float32
    # the same as the model fed the input rounded to `dtype` and back
    with torch.no_grad():
        rounded = model.get_ecg_features(batch["input_values"].to(dtype).float())
    torch.testing.assert_close(cast, rounded, rtol=0, atol=0)
    if dtype == torch.float64:
        torch.testing.assert_close(cast, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int16, torch.bool, torch.complex64])
def test_non_float_input_values_are_a_type_error(model_type, dtype):
    model, batch = tiny_model_and_batch(model_type)
    with pytest.raises(TypeError, match=rf"input_values must hold floating-point samples .*got {dtype}"):
        model(**{**batch, "input_values": batch["input_values"].to(dtype)})


@pytest.mark.parametrize("model_type", FAMILIES)
def test_float_token_ids_are_a_type_error(model_type):
    model, batch = tiny_model_and_batch(model_type)
    with pytest.raises(TypeError, match="input_ids must hold integer token ids, got torch.float32"):
        model(**{**batch, "input_ids": batch["input_ids"].float()})


# ----------------------------------------------------------------------------------------------------------------------
# d. token ids outside the vocabulary or past the position table


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("where", ["vocab_size", "negative"])
def test_token_ids_outside_the_vocabulary_are_refused(model_type, where):
    model, batch = tiny_model_and_batch(model_type)
    vocab_size = model.config.text_config.vocab_size
    batch["input_ids"][1, 2] = vocab_size if where == "vocab_size" else -1
    expected = rf"input_ids holds token ids outside the text encoder's vocabulary \[0, {vocab_size}\) \(batch row 1"
    with pytest.raises(ValueError, match=expected):
        model(**batch)
    with pytest.raises(ValueError, match=expected):
        model.get_text_features(batch["input_ids"], batch["attention_mask"])


@pytest.mark.parametrize("model_type", ["tamer", "cgdmer"])
def test_reports_longer_than_the_bert_position_table_are_refused(model_type):
    model, batch = tiny_model_and_batch(model_type)
    limit = model.config.text_config.max_position_embeddings
    long_ids = batch["input_ids"][:, :1].repeat(1, limit + 1)
    with pytest.raises(ValueError, match=rf"{limit + 1} tokens per row, more than the text encoder's {limit} positions"):
        model(input_values=batch["input_values"], input_ids=long_ids, attention_mask=torch.ones_like(long_ids))
    at_limit = long_ids[:, :limit]
    with torch.no_grad():
        assert model(input_values=batch["input_values"], input_ids=at_limit).text_embeds.shape[0] == 2


def test_cmelt_t5_has_no_position_limit():
    """T5 encodes positions as relative buckets: a report longer than the tokenizer's 512 still encodes."""
    model, batch = tiny_model_and_batch("cmelt")
    assert getattr(model.config.text_config, "max_position_embeddings", None) is None
    long_ids = batch["input_ids"][:, :1].repeat(1, 600)
    with torch.no_grad():
        features = model.get_text_features(long_ids)
    assert features.shape[0] == 2 and torch.isfinite(features).all()


# ----------------------------------------------------------------------------------------------------------------------
# e. attention masks


@pytest.mark.parametrize("model_type", FAMILIES)
def test_an_all_zero_attention_mask_row_is_refused_naming_the_row(model_type):
    model, batch = tiny_model_and_batch(model_type)
    batch["attention_mask"][1] = 0
    with pytest.raises(ValueError, match=r"attention_mask attends to no token in batch row 1"):
        model(**batch)
    with pytest.raises(ValueError, match=r"attention_mask attends to no token in batch row 1"):
        model.get_text_features(batch["input_ids"], batch["attention_mask"])


def test_an_all_zero_row_with_cached_text_features_is_refused():
    model, batch = tiny_model_and_batch("tamer")
    with torch.no_grad():
        encoding = model.encode_text(batch["input_ids"], batch["attention_mask"])
    mask = batch["attention_mask"].clone()
    mask[0] = 0
    with pytest.raises(ValueError, match=r"attention_mask attends to no token in batch row 0"):
        model(input_values=batch["input_values"], text_encoding=encoding, attention_mask=mask)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_an_attention_mask_of_another_shape_is_refused(model_type):
    model, batch = tiny_model_and_batch(model_type)
    with pytest.raises(ValueError, match="attention_mask has shape .* but input_ids has"):
        model(**{**batch, "attention_mask": batch["attention_mask"][:, :-1]})


# ----------------------------------------------------------------------------------------------------------------------
# the classification heads


def classifier(model_type):
    model, _ = tiny_model_and_batch(model_type)
    config = model.config
    config.num_labels = 3
    torch.manual_seed(0)
    return get_family(model_type).extra_auto_models["AutoModelForAudioClassification"](config)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_classification_head_refuses_non_finite_labels_and_a_training_batch_of_one(model_type):
    model = classifier(model_type)
    ecg = torch.rand(2, model.config.num_leads, model.config.num_samples)
    labels = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match=r"labels holds NaN or Inf values \(batch row 0\)"):
        model(ecg, labels=labels)
    with pytest.raises(ValueError, match=r"labels must be multi-hot of shape \(batch, num_labels\) = \(2, 3\)"):
        model(ecg, labels=labels[:, :2])
    model.train()
    with pytest.raises(ValueError, match="at least 2 records .* got 1"):
        model(ecg[:1], labels=labels[1:])
    model.eval()
    with torch.no_grad():
        assert model(ecg[:1]).logits.shape == (1, 3)


# ----------------------------------------------------------------------------------------------------------------------
# k. null reports in the pre-training data


def test_null_reports_are_left_out_with_a_warning_counting_them():
    from datasets import Dataset

    from tamer_hf.training import InputError, NullReportsWarning, drop_null_reports

    reports = ["sinus rhythm.", None, float("nan"), "", "   ", "atrial fibrillation.", "None of the above."]
    train_set = Dataset.from_dict({"report": [None if r != r else r for r in reports], "row": list(range(7))})
    with pytest.warns(NullReportsWarning, match="left out 4 of 7 training rows"):
        kept = drop_null_reports(train_set)
    assert kept["row"] == [0, 5, 6] and kept["report"][2] == "None of the above."
    with pytest.raises(InputError, match="every one of the 3 training reports is null or empty"):
        drop_null_reports(Dataset.from_dict({"report": [None, "", " "]}))


def test_pretraining_on_a_corpus_of_null_reports_is_a_usage_error(tmp_path):
    import os
    import subprocess
    import sys

    import numpy as np
    from datasets import Dataset

    ecg = (np.random.default_rng(0).standard_normal((12, 5000)) * 0.3).astype("float32").tolist()
    Dataset.from_dict({"ecg": [ecg] * 4, "report": [None, "", None, " "]}).to_parquet(str(tmp_path / "c.parquet"))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-m", "tamer_hf", "pretrain", "--dataset", str(tmp_path / "c.parquet"), "--model_preset",
         "tiny", "--batch_size", "2", "--max_steps", "1", "--report_to", "none", "--output_dir", str(tmp_path / "run")],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("every one of the 4 training reports is null or empty: "
                                                         "check --report_column.")


# ----------------------------------------------------------------------------------------------------------------------
# m. saved files readable as any new file


def umask_mode():
    import os

    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@pytest.mark.parametrize("model_type", FAMILIES)
def test_saved_weights_have_the_umask_permissions(model_type, tmp_path):
    import os

    model, _ = tiny_model_and_batch(model_type)
    model.save_pretrained(tmp_path)
    for name in ("model.safetensors", "config.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == umask_mode(), name


def test_checkpoint_weights_have_the_umask_permissions(tmp_path):
    import os

    from accelerate import Accelerator

    from tamer_hf.training import save_checkpoint

    model, processor = tiny_model_and_processor()
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(model)
    save_checkpoint(accelerator, str(tmp_path), step=1, total_limit=0, processor=processor)
    weights = list(tmp_path.rglob("*.safetensors"))
    assert weights
    for path in weights:
        assert os.stat(path).st_mode & 0o777 == umask_mode(), path

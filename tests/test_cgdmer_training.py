"""CG-DMER through `tamer pretrain` (`examples/pretrain.py`): a short quick-size run learns zero-shot diagnosis, the
paper's four Table 3 variants each train and reload, custom Parquet data trains and bad options are named.
Kill-and-resume: tests/test_resume_families.py."""

import pytest
from safetensors.torch import load_file
from transformers import AutoModel

import tamer_hf  # noqa: F401 (registers the families with the Auto classes)
from tamer_hf.commands.pretrain import main as pretrain_command

TINY_RUN = ["--model_type", "cgdmer", "--model_size", "tiny", "--synthetic_records", "120", "--batch_size", "8",
            "--max_steps", "2", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none",
            "--cgdmer_local_vocab_size", "300"]


def pretrain_in_process(*argv):
    """`tamer pretrain` (what `examples/pretrain.py` runs) with these arguments, in this process."""
    return pretrain_command(list(argv))


# A short run of the quick start (150 of its 800 steps, 1500 of its 4000 records) with a fixed word-level vocabulary.
# Measured on this run: 0.707 held-out macro-AUC, the same in repeated runs (the full quick start: 0.85); chance 0.5.
AUC_FLOOR = 0.65
SHORT_QUICK_RUN = ["--model_type", "cgdmer", "--model_preset", "cgdmer-quick", "--synthetic_records", "1500",
                   "--max_steps", "150", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none"]


def word_level_tokenizer(folder, texts) -> str:
    """Every word of `texts` (and the clinical statements) in sorted order: a trained WordPiece vocabulary differs
    from run to run, which moves a short run's AUC by a few hundredths; this one is the same every time."""
    import re

    from transformers import BertTokenizer

    from tamer_hf.text import CLINICAL_STATEMENTS, SPECIAL_TOKENS

    words = sorted(set(re.findall(r"\w+|[^\w\s]", " ".join([*CLINICAL_STATEMENTS, *texts]).lower())))
    BertTokenizer(vocab={word: index for index, word in enumerate(SPECIAL_TOKENS + words)}).save_pretrained(str(folder))
    return str(folder)


def test_a_short_quick_run_learns_zero_shot_diagnosis(tmp_path):
    from datasets_scripts import synthetic

    reports = synthetic.generate(num_records=1500, seed=42)["train"]["report"]
    tokenizer = word_level_tokenizer(tmp_path / "tokenizer", reports)
    summary = pretrain_in_process(*SHORT_QUICK_RUN, "--tokenizer", tokenizer, "--output_dir", str(tmp_path / "run"))
    assert summary["completed_steps"] == 150 and summary["model_preset"] == "cgdmer-quick"
    assert summary["loss_terms"] == ["siglip", "ecg_reconstruction", "mlm", "disentanglement"]
    assert summary["test"]["num_records"] >= 150
    assert summary["test"]["macro_auc"] >= AUC_FLOOR, summary["test"]


@pytest.mark.parametrize("preset, terms", [
    ("cgdmer-v1", ["siglip"]),
    ("cgdmer-v2", ["siglip", "ecg_reconstruction"]),
    ("cgdmer-v3", ["siglip", "ecg_reconstruction", "mlm"]),
    ("cgdmer-v4", ["siglip", "ecg_reconstruction", "mlm", "disentanglement"]),
])
def test_each_table_3_variant_trains_through_the_script_and_reloads(preset, terms, tmp_path):
    summary = pretrain_in_process(*TINY_RUN, "--model_preset", preset, "--output_dir", str(tmp_path))
    assert summary["completed_steps"] == 2 and summary["loss_terms"] == terms
    model = AutoModel.from_pretrained(tmp_path)
    assert model.config.enabled_losses == terms and model.config.hidden_size == 16  # the variant at tiny size
    saved = load_file(tmp_path / "model.safetensors")
    assert all(key in saved for key in model.state_dict() if "num_batches_tracked" not in key)
    assert any(key.startswith("ecg_specific_encoder.") for key in saved) == ("disentanglement" in terms)


def test_pretraining_on_a_custom_parquet_dataset(tmp_path):
    from datasets_scripts import synthetic

    table = synthetic.generate(num_records=40, seed=5)["train"].select_columns(["ecg", "report"])
    table.rename_columns({"ecg": "signal", "report": "text"}).to_parquet(str(tmp_path / "mine.parquet"))
    summary = pretrain_in_process(
        "--model_type", "cgdmer", "--dataset", str(tmp_path / "mine.parquet"), "--ecg_column", "signal",
        "--report_column", "text", "--sampling_rate", "500", "--text_encoder", "local", "--model_preset",
        "cgdmer-tiny", "--batch_size", "8", "--max_steps", "2", "--cgdmer_local_vocab_size", "300",
        "--output_dir", str(tmp_path / "run"), "--report_to", "none")
    assert summary["completed_steps"] == 2 and summary["train_records"] == len(table)
    assert "test" not in summary  # unlabelled data: nothing to score
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "README.md").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--model_preset", "cgdmer-v1", "--no_siglip"], "every loss term"),
    (["--mask_ratio", "0.2"], "more than mask_ratio"),
    (["--patch_size", "300"], "patch_size"),
    (["--cgdmer_local_vocab_size", "0"], "--cgdmer_local_vocab_size must be positive"),
])
def test_bad_options_are_named(argv, message):
    from tamer_hf.training import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args(["--model_type", "cgdmer", *argv])


def test_quick_start_and_paper_defaults():
    from tamer_hf.training import parse_args

    quick, paper = parse_args(["--model_type", "cgdmer"]), parse_args(["--model_type", "cgdmer", "--dataset", "x"])
    assert (quick.model_preset, quick.text_encoder, quick.dataset) == ("cgdmer-quick", "local", None)
    assert (paper.model_preset, paper.text_encoder) == ("cgdmer-paper", "ncbi/MedCPT-Query-Encoder")
    assert (paper.global_batch_size, paper.num_train_epochs, paper.learning_rate) == (256, 50, 2e-4)

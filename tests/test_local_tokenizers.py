"""The locally trained report tokenizers announce a finite `model_max_length` (512, as MedCPT's and Flan-T5's), which
survives save/reload and is what `truncation=True` cuts to."""

import pytest
from transformers import AutoTokenizer

from tamer_hf.text import MODEL_MAX_LENGTH, train_report_tokenizer, train_t5_tokenizer


@pytest.mark.parametrize("train", [train_report_tokenizer, train_t5_tokenizer], ids=["wordpiece", "t5"])
def test_model_max_length_is_finite_survives_reload_and_truncates(train, tmp_path):
    tokenizer = train(["sinus rhythm", "atrial fibrillation"], vocab_size=300)
    assert tokenizer.model_max_length == MODEL_MAX_LENGTH == 512
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.model_max_length == 512
    long_report = " ".join(["sinus rhythm with atrial fibrillation"] * 400)
    assert len(reloaded(long_report)["input_ids"]) > 512
    assert len(reloaded(long_report, truncation=True)["input_ids"]) == 512
    assert train(vocab_size=300, model_max_length=128).model_max_length == 128

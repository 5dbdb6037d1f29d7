"""Every family's model follows the transformers call conventions: a misspelt keyword is a TypeError naming it (no
`**kwargs` swallowing it), and `return_dict=False` (or `config.return_dict = False`) returns the output's tuple."""

import pytest
import torch

from tamer_hf.testing_utils import TINY_BUILDERS, tiny_model_and_batch


@pytest.mark.parametrize("model_type", sorted(TINY_BUILDERS))
def test_a_misspelt_keyword_is_named(model_type):
    model, batch = tiny_model_and_batch(model_type)
    batch["atention_mask"] = batch.pop("attention_mask")
    with pytest.raises(TypeError, match="atention_mask"):
        model(**batch)


@pytest.mark.parametrize("model_type", sorted(TINY_BUILDERS))
def test_return_dict_false_gives_the_output_tuple(model_type):
    model, batch = tiny_model_and_batch(model_type)
    with torch.no_grad():
        as_dict = model(**batch)
        as_tuple = model(**batch, return_dict=False)
        model.config.return_dict = False
        from_config = model(**batch)
    assert isinstance(as_tuple, tuple) and isinstance(from_config, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected) == len(from_config)
    for a, b, c in zip(as_tuple, expected, from_config):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(c, b, rtol=0, atol=0)
    torch.testing.assert_close(as_tuple[0], as_dict.ecg_embeds if as_dict.loss is None else as_dict.loss)


# the report encoder's attention under attn_implementation="sdpa": TAMER keeps BERT eager (its word weights read the
# [CLS] attention maps, which SDPA does not return)
TEXT_ENCODER_UNDER_SDPA = {"tamer": "eager", "cmelt": "sdpa", "cgdmer": "sdpa"}


@pytest.mark.parametrize("model_type", sorted(TINY_BUILDERS))
def test_sdpa_is_accepted_and_scores_as_eager(model_type, tmp_path):
    from transformers import AutoModel

    import tamer_hf  # noqa: F401 (registers the Auto classes)

    model, batch = tiny_model_and_batch(model_type)
    model.save_pretrained(tmp_path)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        loaded = AutoModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        expected = "eager" if implementation == "eager" else TEXT_ENCODER_UNDER_SDPA[model_type]
        assert loaded.text_model.config._attn_implementation == expected
        with torch.no_grad():
            outputs[implementation] = loaded.get_text_features(input_ids=batch["input_ids"],
                                                               attention_mask=batch["attention_mask"])
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=0, atol=1e-5)

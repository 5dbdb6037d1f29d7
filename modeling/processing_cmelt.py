"""C-MELT processor: the project's ECG feature extractor and a T5 tokenizer behind one call."""

from transformers import BatchFeature, ProcessorMixin


class CmeltProcessor(ProcessorMixin):
    r"""Wraps a [`TamerFeatureExtractor`] and a T5 tokenizer (paper: google/flan-t5-base's).

    C-MELT's code feeds the encoder raw amplitudes (`normalize=false`), and its lead masking zeroes leads, which only
    means "no signal" on a zero baseline; so C-MELT's feature extractor uses `normalization="none"` (millivolts), not
    the [0, 1] min-max scaling of MERL and TAMER. The MEM target is standardised per lead inside the model either way.

    Args:
        feature_extractor ([`TamerFeatureExtractor`]): prepares ECGs (resampling to 500 Hz, 10 s, lead order).
        tokenizer: the T5 tokenizer of the text encoder. T5 tokenizers have no mask token; MLM uses the sentinel
            `<extra_id_0>` (set as the tokenizer's `mask_token` by the C-MELT family).
        max_text_length (`int`, defaults to 256): reports are truncated to this many tokens (C-MELT code).
    """

    def __init__(self, feature_extractor=None, tokenizer=None, max_text_length: int = 256):
        self.max_text_length = max_text_length
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, ecg=None, text=None, sampling_rate=None, return_tensors="pt", **kwargs) -> BatchFeature:
        """`ecg` and its options (`sampling_rate`, `lead_names`, ...) go to the feature extractor; `text` (a report or
        a list of reports) to the tokenizer, padded to the longest and truncated to `max_text_length`."""
        if ecg is None and text is None:
            raise ValueError("CmeltProcessor needs `ecg`, `text` or both.")
        data = {}
        if ecg is not None:
            data.update(
                self.feature_extractor(ecg, sampling_rate=sampling_rate, return_tensors=return_tensors, **kwargs)
            )
        if text is not None:
            if isinstance(text, str):
                text = [text]
            if not text or not all(isinstance(item, str) for item in text):
                raise ValueError("`text` must be a string or a non-empty list of strings.")
            tokens = self.tokenizer(
                text, padding=True, truncation=True, max_length=self.max_text_length, return_tensors=return_tensors
            )
            data.update(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self):
        return ["input_values", "input_ids", "attention_mask"]


__all__ = ["CmeltProcessor"]

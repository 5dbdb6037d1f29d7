"""Processor: the ECG feature extractor and the report tokenizer behind one call."""

from transformers import BatchFeature, ProcessorMixin


class TamerProcessor(ProcessorMixin):
    r"""Wraps a [`TamerFeatureExtractor`] and a BERT-family tokenizer.

    Args:
        feature_extractor ([`TamerFeatureExtractor`]): prepares ECGs.
        tokenizer: tokenizes reports and label prompts (the frozen report encoder's own tokenizer).
        max_text_length (`int`, defaults to 256): reports are truncated to this many tokens (MERL).
    """

    def __init__(self, feature_extractor=None, tokenizer=None, max_text_length: int = 256):
        self.max_text_length = max_text_length
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, ecg=None, text=None, sampling_rate=None, return_tensors="pt", **kwargs) -> BatchFeature:
        """`ecg` and its options (`sampling_rate`, `lead_names`, ...) go to the feature extractor; `text` (a report or
        a list of reports) to the tokenizer, padded to the longest and truncated to `max_text_length`."""
        if ecg is None and text is None:
            raise ValueError("TamerProcessor needs `ecg`, `text` or both.")
        data = {}
        if ecg is not None:
            data.update(self.feature_extractor(ecg, sampling_rate=sampling_rate, return_tensors=return_tensors, **kwargs))
        if text is not None:
            if isinstance(text, str):
                text = [text]
            if not text or not all(isinstance(item, str) for item in text):
                raise ValueError("`text` must be a string or a non-empty list of strings.")
            data.update(
                self.tokenizer(
                    text, padding=True, truncation=True, max_length=self.max_text_length, return_tensors=return_tensors
                )
            )
            data.pop("token_type_ids", None)
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self):
        return ["input_values", "input_ids", "attention_mask"]


__all__ = ["TamerProcessor"]

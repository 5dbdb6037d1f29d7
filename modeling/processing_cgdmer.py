"""CG-DMER processor: the project's ECG feature extractor and a BERT (WordPiece) tokenizer behind one call."""

from transformers import BatchFeature, ProcessorMixin


class CgdmerProcessor(ProcessorMixin):
    r"""Wraps a [`TamerFeatureExtractor`] and the report encoder's BERT tokenizer (MedCPT's, or a local WordPiece one).

    ECGs are prepared at 500 Hz, 10 s (MERL's benchmark) and each lead is standardised over the record
    (`normalization="zscore"`, set by the CG-DMER family): the linear patch embedding then sees zero-mean, unit-scale
    patches, as a ViT expects, instead of MERL's min-max [0, 1] record whose shared baseline dominates every patch.
    The price is the leads' relative amplitudes. The reconstruction target is standardised again inside the model.

    Args:
        feature_extractor ([`TamerFeatureExtractor`]): prepares ECGs (resampling to 500 Hz, 10 s, lead order, scaling).
        tokenizer: the BERT tokenizer of the report encoder; its `[MASK]` token serves the masked report
            reconstruction.
        max_text_length (`int`, defaults to 256): reports are truncated to this many tokens (MERL).
    """

    def __init__(self, feature_extractor=None, tokenizer=None, max_text_length: int = 256):
        self.max_text_length = max_text_length
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, ecg=None, text=None, sampling_rate=None, return_tensors="pt", **kwargs) -> BatchFeature:
        """`ecg` and its options (`sampling_rate`, `lead_names`, ...) go to the feature extractor; `text` (a report or
        a list of reports) to the tokenizer, padded to the longest and truncated to `max_text_length`."""
        if ecg is None and text is None:
            raise ValueError("CgdmerProcessor needs `ecg`, `text` or both.")
        data = {}
        if ecg is not None:
            data.update(self.feature_extractor(ecg, sampling_rate=sampling_rate, return_tensors=return_tensors,
                                               **kwargs))
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


__all__ = ["CgdmerProcessor"]

"""What every family's `<Family>ForECGClassification` head shares: the output, the multi-label loss and the forward.

A head model is a pre-trained family model (its ECG side) plus a linear head over an ECG embedding (standardised
first: `ECGClassificationHead`), trained on multi-hot diagnosis labels with binary cross-entropy on logits (12-lead
ECG diagnosis is multi-label: one record may be AFIB, CRBBB and STD at once). `num_labels`, `id2label`, `label2id`
and `problem_type` live in the family's config (the standard `PreTrainedConfig` fields), so a fine-tuned folder names
its classes.

A family's head is a few lines (see `TamerForECGClassification`):

    UNUSED = ("text_model", "text_projection", ...)                          # what classification never runs

    class XForECGClassification(ECGClassificationMixin, XPreTrainedModel):   # base_model_prefix = "x"
        _keys_to_ignore_on_load_unexpected = [unused_keys_pattern(UNUSED)]

        def __init__(self, config):
            super().__init__(config)
            self.x = without_modules(XModel(config), UNUSED)                 # the pre-trained weights load here
            self.classifier = classification_head(config, embed_dim)
            self.post_init()

        def ecg_embedding(self, input_values):
            return ...                                                       # (B, embed_dim)

`XForECGClassification.from_pretrained(pretrained_x_folder, num_labels=C, id2label=...)` then loads the pre-trained
weights into `self.x` (transformers adds `base_model_prefix` to a base model's keys) and initialises `classifier`.

Flat, remote-code file: only torch and transformers.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .ecg_model_inputs import check_finite

MULTI_LABEL = "multi_label_classification"


@dataclass
class ECGClassifierOutput(ModelOutput):
    """Outputs of a `<Family>ForECGClassification` model.

    loss: mean binary cross-entropy over records and labels (when `labels` are given).
    logits: (B, num_labels) per-label logits; `sigmoid(logits)` are the per-label probabilities, and AUCs are
        computed on the logits (rank-invariant).
    ecg_embeds: (B, D) the ECG embedding the head reads.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over records and labels; `labels` multi-hot (B, C), any dtype."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class ECGClassificationHead(nn.Module):
    """The ECG embedding, standardised, into one linear layer: (B, D) -> logits (B, num_labels).

    The standardisation is a BatchNorm without affine parameters, as MAE's linear-probing head (He et al., "Masked
    Autoencoders Are Scalable Vision Learners", 2022, App. A.2): batch statistics while training, running averages at
    inference, where the head is one fixed linear map of the embedding. Without it, a pre-trained embedding's common
    offset, large next to its variation across records, dominates the gradient of every label's weights, and Adam's
    per-coordinate steps give the labels weights of arbitrary sign along the directions that tell records apart
    (docs/finetuning.md, the synthetic test run: macro-AUC 0.615 without it, 0.765 with it; NORM 0.26 and 0.91).
    Training batches therefore need at least two records.
    """

    def __init__(self, embed_dim: int, num_labels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(embed_dim, affine=False)
        self.linear = nn.Linear(embed_dim, num_labels)

    def forward(self, ecg_embeds: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(ecg_embeds))  # (B, num_labels)


def classification_head(config, embed_dim: int) -> ECGClassificationHead:
    """The head over the ECG embedding, after checking the config's `problem_type` (set to multi-label when unset:
    the only kind these heads train) and making `label2id` the inverse of `id2label`."""
    if config.problem_type is None:
        config.problem_type = MULTI_LABEL
    if config.problem_type != MULTI_LABEL:
        raise ValueError(f"ECG classification heads train multi-label diagnosis (problem_type={MULTI_LABEL!r}), "
                         f"got problem_type={config.problem_type!r}.")
    if set(config.label2id) != set(config.id2label.values()):
        # from_pretrained(..., id2label=...) alone leaves the default {"LABEL_0": 0, ...} in label2id
        config.label2id = {name: int(index) for index, name in config.id2label.items()}
    return ECGClassificationHead(embed_dim, config.num_labels)


def without_modules(model: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """`model` with its submodules `names` removed: the parts of a pre-trained model that classification never runs
    (report encoder, report projections, pre-training heads), so that a fine-tuned checkpoint holds only the ECG side.

    An empty module stands in for each (a family's `train()` may still call `text_model.eval()`; calling one fails
    loudly), and tied-weight entries that point into them are forgotten (T5's embeddings, for one)."""
    for name in names:
        setattr(model, name, nn.Module())
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    model.all_tied_weights_keys = {key: source for key, source in tied.items()
                                   if key.split(".")[0] not in names and source.split(".")[0] not in names}
    return model


def unused_keys_pattern(names: tuple[str, ...]) -> str:
    """For `_keys_to_ignore_on_load_unexpected`: a pre-trained checkpoint's weights of the removed submodules."""
    return rf"(^|\.)({'|'.join(names)})\."


class ECGClassificationMixin:
    """Forward, loss and encoder freezing of a head model; the family's class gives `ecg_embedding` and
    `classifier` (put this class first in the bases, before the family's `PreTrainedModel`)."""

    main_input_name = "input_values"

    def ecg_embedding(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, leads, samples) -> (B, D): the embedding `classifier` reads."""
        raise NotImplementedError(f"{type(self).__name__} must define ecg_embedding(input_values).")

    def freeze_base_model(self) -> None:
        """Linear probing: only `classifier` trains. While every encoder weight is frozen, `train()` keeps the
        encoder in eval mode too, so its BatchNorm statistics and dropout stay those of the pre-trained model."""
        self.base_model.requires_grad_(False)
        self.base_model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and not any(param.requires_grad for param in self.base_model.parameters()):
            self.base_model.eval()
        return self

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> ECGClassifierOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(B, num_leads, num_samples)`): ECGs from the family's feature
            extractor.
        labels (`torch.Tensor` of shape `(B, num_labels)`, *optional*): multi-hot targets; the output then has `loss`.
        """
        if self.training and self.classifier.norm.training and input_values.shape[0] < 2:
            raise ValueError("training the classification head needs batches of at least 2 records (its BatchNorm "
                             f"standardises over the batch), got {input_values.shape[0]}.")
        if labels is not None:
            if tuple(labels.shape) != (input_values.shape[0], self.config.num_labels):
                raise ValueError(f"labels must be multi-hot of shape (batch, num_labels) = ({input_values.shape[0]}, "
                                 f"{self.config.num_labels}), got {tuple(labels.shape)}.")
            check_finite("labels", labels)
        ecg_embeds = self.ecg_embedding(input_values)  # (B, D)
        logits = self.classifier(ecg_embeds)  # (B, num_labels)
        loss = multi_label_loss(logits, labels) if labels is not None else None
        return ECGClassifierOutput(loss=loss, logits=logits, ecg_embeds=ecg_embeds)


__all__ = ["ECGClassificationHead", "ECGClassificationMixin", "ECGClassifierOutput", "MULTI_LABEL",
           "classification_head", "multi_label_loss", "unused_keys_pattern", "without_modules"]

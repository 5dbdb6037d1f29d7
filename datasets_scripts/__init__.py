"""Builders that turn raw public ECG downloads into ``datasets.DatasetDict`` objects.

Every builder writes the same contract: ``ecg`` float32 (12, 5000) mV at 500 Hz in the canonical lead order
``LEADS``, ``record_id``, ``patient_id``, optional ``report`` and optional ``labels``, a
``List(ClassLabel(names=...))`` column (each row: the indices of its classes) whose ordered names
``label_names(dataset)`` returns and whose (N, C) multi-hot matrix ``multi_hot_labels(dataset)`` returns; a
README.md dataset card is written next to the data.
"""

from .common import LEADS, TARGET_FS, TARGET_LEN, label_names, multi_hot_labels

__all__ = ["LEADS", "TARGET_FS", "TARGET_LEN", "label_names", "multi_hot_labels"]

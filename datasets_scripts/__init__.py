"""Builders that turn raw public ECG downloads into ``datasets.DatasetDict`` objects.

Every builder writes the same contract: ``ecg`` float32 (12, 5000) mV at 500 Hz in the canonical lead order
``LEADS``, ``record_id``, ``patient_id``, optional ``report`` and optional multi-hot int8 ``labels`` whose ordered
names ``label_names(dataset)`` returns.
"""

from .common import LEADS, TARGET_FS, TARGET_LEN, label_names

__all__ = ["LEADS", "TARGET_FS", "TARGET_LEN", "label_names"]

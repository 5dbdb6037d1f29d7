"""tamer-hf: TAMER zero-shot 12-lead ECG diagnosis for the Hugging Face ecosystem.

Importing the package registers the TAMER classes with the transformers Auto classes (`AutoConfig`, `AutoModel`,
`AutoFeatureExtractor`, `AutoProcessor` for every model family: "tamer", "cmelt", ...), registers the "zero-shot-ecg-classification"
pipeline task, and marks them for remote code, so that every
`save_pretrained` folder carries `auto_map` and the `modeling/` files and loads with `trust_remote_code=True` on a
machine without tamer_hf.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor

from .modeling.configuration_tamer import CANONICAL_LEADS, TamerConfig
from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.ecg_classification import ECGClassifierOutput
from .modeling.ecg_validation import ECGQualityWarning
from .modeling.modeling_tamer import (TamerForECGClassification, TamerModel, TamerOutput, TamerTextEncoding,
                                     contrastive_loss, stft_magnitude)
from .modeling.processing_tamer import TamerProcessor
from .pipelines import TASK, ZeroShotECGClassificationPipeline, pipeline, register_pipeline, save_pretrained_with_pipeline

__version__ = "0.1.0"


def _register_auto_classes():
    """Every model family of `tamer_hf.families` with the Auto classes, and marked for remote code."""
    import transformers

    from .families import all_families

    for family in all_families():
        config_class = family.config_class
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, family.model_class, exist_ok=True)
        AutoFeatureExtractor.register(config_class, family.feature_extractor_class, exist_ok=True)
        AutoProcessor.register(config_class, family.processor_class, exist_ok=True)
        config_class.register_for_auto_class()
        family.model_class.register_for_auto_class("AutoModel")
        family.feature_extractor_class.register_for_auto_class()
        family.processor_class.register_for_auto_class()
        for auto_name, model_class in family.extra_auto_models.items():
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_name)


_register_auto_classes()
register_pipeline()

__all__ = [
    "TASK",
    "ZeroShotECGClassificationPipeline",
    "pipeline",
    "register_pipeline",
    "save_pretrained_with_pipeline",
    "CANONICAL_LEADS",
    "ECGClassifierOutput",
    "ECGQualityWarning",
    "TamerConfig",
    "TamerFeatureExtractor",
    "TamerForECGClassification",
    "TamerModel",
    "TamerOutput",
    "TamerProcessor",
    "TamerTextEncoding",
    "contrastive_loss",
    "stft_magnitude",
]

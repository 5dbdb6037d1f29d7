"""tamer-hf: TAMER zero-shot 12-lead ECG diagnosis for the Hugging Face ecosystem.

Importing the package registers the TAMER classes with the transformers Auto classes (`AutoConfig`, `AutoModel`,
`AutoFeatureExtractor`, `AutoProcessor` for model_type "tamer"), registers the "zero-shot-ecg-classification"
pipeline task, and marks them for remote code, so that every
`save_pretrained` folder carries `auto_map` and the `modeling/` files and loads with `trust_remote_code=True` on a
machine without tamer_hf.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor

from .modeling.configuration_tamer import CANONICAL_LEADS, TamerConfig
from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.modeling_tamer import TamerModel, TamerOutput, TamerTextEncoding, contrastive_loss, stft_magnitude
from .modeling.processing_tamer import TamerProcessor
from .pipelines import TASK, ZeroShotECGClassificationPipeline, pipeline, register_pipeline, save_pretrained_with_pipeline

__version__ = "0.1.0"


def _register_auto_classes():
    AutoConfig.register(TamerConfig.model_type, TamerConfig, exist_ok=True)
    AutoModel.register(TamerConfig, TamerModel, exist_ok=True)
    AutoFeatureExtractor.register(TamerConfig, TamerFeatureExtractor, exist_ok=True)
    AutoProcessor.register(TamerConfig, TamerProcessor, exist_ok=True)
    TamerConfig.register_for_auto_class()
    TamerModel.register_for_auto_class("AutoModel")
    TamerFeatureExtractor.register_for_auto_class()
    TamerProcessor.register_for_auto_class()


_register_auto_classes()
register_pipeline()

__all__ = [
    "TASK",
    "ZeroShotECGClassificationPipeline",
    "pipeline",
    "register_pipeline",
    "save_pretrained_with_pipeline",
    "CANONICAL_LEADS",
    "TamerConfig",
    "TamerFeatureExtractor",
    "TamerModel",
    "TamerOutput",
    "TamerProcessor",
    "TamerTextEncoding",
    "contrastive_loss",
    "stft_magnitude",
]

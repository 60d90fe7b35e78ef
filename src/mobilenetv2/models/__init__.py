"""The MobileNet family: V2 (the paper's Table 2), V1 and V3, built from the same blocks."""

from mobilenetv2.models.base import MobileNet, Stage
from mobilenetv2.models.builder import FeatureBuilder
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import MOBILENET_V2_TABLE, MobileNetV2
from mobilenetv2.models.mobilenet_v3 import MobileNetV3
from mobilenetv2.models.registry import create_model, list_models, model_from_arch, register_model

__all__ = [
    "MOBILENET_V2_TABLE", "FeatureBuilder", "MobileNet", "MobileNetV1", "MobileNetV2", "MobileNetV3", "Stage",
    "create_model", "list_models", "model_from_arch", "register_model",
]

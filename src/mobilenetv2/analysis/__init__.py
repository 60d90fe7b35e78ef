"""Analysis: parameters, multiply-adds, sizes and activation memory of a model."""

from mobilenetv2.analysis.profile import LayerRow, ModelProfile, count_macs, profile

__all__ = ["LayerRow", "ModelProfile", "count_macs", "profile"]

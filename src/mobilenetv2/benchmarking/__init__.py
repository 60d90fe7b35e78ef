"""Benchmarking: inference speed of every deployment path (`benchmark`) and model comparison (`compare`)."""

# The timed paths of `benchmark` (here, without torch, so that `mobilenetv2 benchmark --help` stays fast).
PATHS = ("torchvision", "eager", "channels_last", "bn_folded", "compile", "bf16", "onnx", "int8", "openvino", "openvino_bf16",
         "openvino_int8")

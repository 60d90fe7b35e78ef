"""Deployment: BatchNorm folding, ONNX/TorchScript/pt2 export, int8 quantization, onnxruntime inference
(quantization-aware training is part of training: ``mobilenetv2.training.qat``)."""

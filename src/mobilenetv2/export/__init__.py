"""Deployment: BatchNorm folding, ONNX/TorchScript/pt2 export, int8 quantization, onnxruntime inference, QAT."""

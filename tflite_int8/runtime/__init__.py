"""Running models: .tflite files opened safely and described, the I/O adapter (Runner), the PyTorch/ONNX reference
models, tensor metrics."""

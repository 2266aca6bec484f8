"""Engine stage: ONNX graphs to TensorRT engines, with a sidecar describing each build."""

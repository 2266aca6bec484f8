"""Export stage (needs torch and onnx): checkpoints to verified ONNX graphs."""

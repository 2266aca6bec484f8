"""Engine stage: ONNX graphs to TensorRT engines, with a sidecar describing each build."""

if __name__ != "stylize_rt.engines":  # a checkout's root on sys.path would make this a second, separate package
    raise ImportError(f"import stylize_rt.engines, not {__name__}: the stage folders are subpackages of stylize_rt")

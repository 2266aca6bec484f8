"""Export stage (needs torch and onnx): checkpoints to verified ONNX graphs."""

if __name__ != "stylize_rt.export":  # a checkout's root on sys.path would make this a second, separate package
    raise ImportError(f"import stylize_rt.export, not {__name__}: the stage folders are subpackages of stylize_rt")

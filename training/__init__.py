"""Training stage (needs torch): losses, data and trainers for the style generator and the captioner."""

if __name__ != "stylize_rt.training":  # a checkout's root on sys.path would make this a second, separate package
    raise ImportError(f"import stylize_rt.training, not {__name__}: the stage folders are subpackages of stylize_rt")

"""Runtime stage: backends, frame sources/sinks and the stylizing pipeline. Never imports torch."""

if __name__ != "stylize_rt.runtime":  # a checkout's root on sys.path would make this a second, separate package
    raise ImportError(f"import stylize_rt.runtime, not {__name__}: the stage folders are subpackages of stylize_rt")

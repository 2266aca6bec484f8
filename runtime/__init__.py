"""Runtime stage: backends, frame sources/sinks and the stylizing pipeline. Never imports torch."""

"""Training stage (needs torch): the style generator, its losses and data, and the captioner."""

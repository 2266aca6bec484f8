"""stylize-rt: real-time neural style transfer, from training to TensorRT engines.

The import package maps the repository's stage folders as subpackages:
``stylize_rt.training``, ``stylize_rt.export``, ``stylize_rt.engines``,
``stylize_rt.runtime`` and ``stylize_rt.benchmarks``. Importing this package
(and ``stylize_rt.runtime``) never imports torch.
"""

__version__ = "0.1.0"

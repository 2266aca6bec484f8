"""Peer networks benchmarked beside the model, so each table has a reference everyone knows.

``johnson2016`` is the architecture of Johnson et al. 2016, "Perceptual Losses for Real-Time
Style Transfer" (what most fast style transfer code ships): a 9x9 full-resolution stem,
32/64/128 channels, 5 residual blocks. Speed does not depend on what the weights learned,
so it runs with random weights (fixed seed), built and exported here into the bench's
temporary folder. Needs torch and onnx (the ``train``/``export`` extras).

``plain`` is the benchmarked model's own layout as a plain single-style network (its widths
and depth, ``n_styles=1``): beside a multi-style model it gives the same-run ratio of what
conditional instance norm and the control inputs (style, strength, colour) cost.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PEERS = {
    "johnson2016": {"stem": "conv", "stem_kernel": 9, "channels": [32, 64, 128], "res_blocks": 5,
                    "padding": "reflect"},
    "plain": None,  # the model's own generator config with n_styles = 1
}


def peer_unavailable() -> str | None:
    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    return f"a peer network is built with {' and '.join(missing)} (pip install 'stylize-rt[train,export]')" \
        if missing else None


def build_peer(name: str, workdir: Path, model_config: dict | None = None) -> tuple[Path, Path]:
    """(checkpoint folder, uint8-NHWC FP32 ONNX) of peer ``name`` with random weights (seed 0);
    ``model_config``: the benchmarked model's generator config (``plain`` copies it)."""
    import torch  # torch and onnx: checked by peer_unavailable before this is called

    from stylize_rt.export.onnx_export import export_generator
    from stylize_rt.nets.checkpoint import save_generator
    from stylize_rt.nets.generator import Generator, GeneratorConfig

    config = PEERS[name]
    if config is None:
        if model_config is None:
            raise ValueError(f"peer {name!r} copies the model's generator config; the model has none")
        config = {**model_config, "n_styles": 1}
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.from_dict(config)).eval()
    checkpoint = save_generator(workdir / name, generator, extra={"peer": name})
    onnx_path = export_generator(generator, workdir / f"{name}.onnx", io_layout="uint8_nhwc")
    return checkpoint, onnx_path


__all__ = ["PEERS", "peer_unavailable", "build_peer"]

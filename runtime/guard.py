"""Never replace a file the run reads: outputs are checked against inputs before anything opens.

An output "is" an input when it is the same file by any name: the same path spelled
differently, a symlink or a hard link to it (``os.path.samefile``), a folder output whose
file names land on the input images (the folder written into itself), a log or raw pipe
redirected onto the input. The check runs before the model loads and before any output is
opened for writing, and refuses with one line (exit 2).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Iterable

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.sinks import folder_file_name, output_kind


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then they are not one file
        return False


def _fd_is(fd_file, path: Path) -> bool:
    """A standard stream redirected to ``path`` (``> in.mp4``, ``< out.mp4``)."""
    try:
        if fd_file is None:
            return False
        st, target = os.fstat(fd_file.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino)


def _same_stream(a, b) -> bool:
    """Two standard streams open on the same regular file."""
    try:
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISREG(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def planned_outputs(output: str | None, input_files: Iterable[Path]) -> list[Path]:
    """The files ``--output`` will write (for a folder: one per input image, by the folder's naming)."""
    if output is None:
        return []
    kind = output_kind(output)
    if kind in ("video", "image"):
        return [Path(output)]
    if kind == "folder":
        return [Path(output) / folder_file_name(p.name, i) for i, p in enumerate(input_files)]
    return []


def refuse_overwriting_inputs(input_files: list[Path], output: str | None, extra_outputs: Iterable[str | None] = (),
                              protected: Iterable[Path | None] = (), stdin_is_input: bool = False) -> None:
    """One-line ``BadInputError`` if any output of the run would replace one of its inputs
    (``protected``: other files the run reads, such as the model)."""
    reads = [Path(p) for p in input_files] + [Path(p) for p in protected if p is not None]
    stdin_file = sys.stdin if stdin_is_input else None
    targets = planned_outputs(output, input_files) + [Path(p) for p in extra_outputs if p not in (None, "-")]
    for target in targets:
        for source in reads:
            if _same(target, source):
                what = "folder output" if output is not None and output_kind(output) == "folder" else "output"
                raise BadInputError(f"{what} {target} is the input file {source}: writing it would destroy the "
                                    "input; choose another output path")
        if _fd_is(stdin_file, target):
            raise BadInputError(f"output {target} is the file on stdin: writing it would destroy the input")
    if output == "-":
        for source in reads:
            if _fd_is(sys.stdout, source):
                raise BadInputError(f"stdout is redirected onto the input file {source}: that would destroy it")
        if stdin_is_input and _same_stream(sys.stdin, sys.stdout):
            raise BadInputError("stdout is redirected onto the file on stdin: writing it would destroy the input")


__all__ = ["planned_outputs", "refuse_overwriting_inputs"]

"""The one atomic-write path every stage uses: old file intact on failure, shareable modes, one-line errors."""

from __future__ import annotations

import errno
import os

import pytest

from stylize_rt.errors import OutputError
from stylize_rt.fileio import atomic_file, output_error, shareable_mode, write_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "result.json"
    write_atomic(target, "old\n")
    with pytest.raises(RuntimeError), atomic_file(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("writer failed mid-way")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_written_files_get_the_mode_open_would_give(tmp_path):
    path = write_atomic(tmp_path / "sub" / "model.bin", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == shareable_mode()  # not mkstemp's private 0600


def test_errors_are_one_line_and_name_a_full_disk(tmp_path):
    assert str(output_error("out.mp4", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))) == (
        "disk full while writing out.mp4"
    )
    with pytest.raises(OutputError, match="it is a directory"):
        write_atomic(tmp_path, "x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(blocker / "child.txt", "x")  # parent is a file

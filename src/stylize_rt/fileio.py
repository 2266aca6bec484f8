"""Atomic file writes shared by every stage: a reader never sees half a file.

Each output is written to a temp file beside its target, given the mode a plain ``open()``
would give (``mkstemp`` makes owner-only files; models, results and images are for sharing),
and renamed into place. Failures become one-line ``OutputError``s; a full disk says so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from stylize_rt.errors import BadInputError, OutputError


def shareable_mode(directory: bool = False) -> int:
    """The mode ``open()``/``mkdir()`` would give a new entry under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def output_error(path: Path | str, exc: OSError) -> OutputError:
    """One line for a failed write; ENOSPC is named as a full disk, the commonest cause."""
    if exc.errno == errno.ENOSPC:
        return OutputError(f"disk full while writing {path}")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Yield an open temp file beside ``path``; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, shareable_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike[str], data: str | bytes | memoryview) -> Path:
    """Write text or bytes to ``path`` atomically."""
    with atomic_file(path, "w" if isinstance(data, str) else "wb") as handle:
        handle.write(data)
    return Path(path)


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file's content; missing, unreadable or malformed files are one-line ``BadInputError``s
    naming ``what`` the file should have been."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"corrupt {what} {path}: {exc}") from None


def check_writable_dir(directory: str | os.PathLike[str]) -> None:
    """Fail before minutes of work if ``directory`` cannot take new files (probe file, removed again)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".stylize-rt-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(directory, exc) from None


def share_modes(tmp: Path) -> None:
    """mkdtemp/mkstemp make private (0700/0600) entries; a saved model is for sharing (umask applies)."""
    os.chmod(tmp, shareable_mode(directory=True))
    for entry in tmp.rglob("*"):
        os.chmod(entry, shareable_mode(directory=entry.is_dir()))


def replace_dir(tmp: Path, target: Path) -> Path:
    """Move a finished temp dir into place; an existing target is swapped out, not half-overwritten."""
    share_modes(tmp)
    old = None
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target

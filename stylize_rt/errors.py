"""User-facing errors: one clear line, a documented exit code, never a traceback."""

from __future__ import annotations


class StylizeError(Exception):
    """An error the user can act on; the CLI prints ``error: <message>`` and exits ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(StylizeError):
    """Input data (image, video, model file, dataset, shape) is missing, corrupt or of the wrong kind."""

    exit_code = 2


class MissingDependencyError(StylizeError):
    """An optional dependency (torch, TensorRT, a GPU) is needed for this command but absent."""

    exit_code = 2


class OutputError(StylizeError):
    """An output could not be written (unwritable path, disk full)."""

    exit_code = 3

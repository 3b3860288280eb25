"""Writing a file so that no reader ever sees half of it, and never over someone else's."""

from __future__ import annotations

import os
from pathlib import Path

from pilothouse.errors import ConfigError


def create(path: Path, data: bytes, mode: int) -> None:
    """A new file with `mode` from the first byte; ConfigError if it exists or cannot be made."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def replace(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a temporary file beside `path`, then rename it over `path` (atomic on one filesystem)."""
    import tempfile  # here: every CLI module imports this file, and `--help` needs none of it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Reading a TOML file the user names, safely: a regular file of bounded size and nesting.

A FIFO would block the reader forever, a 50 MB string takes seconds to parse, and 5000 nested
arrays exhaust the parser's recursion: each is one ConfigError line instead of a hang or a
traceback.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pilothouse.errors import ConfigError

MAX_BYTES = 1024 * 1024  # a config file is a few KiB; a megabyte is a mistake or an attack
MAX_DEPTH = 32  # tables and arrays nested deeper than any real config


def read_toml(file: Path) -> tuple[dict[str, Any], str]:
    """The parsed document and its text; ConfigError (one line, naming the file) otherwise."""
    text = _read_text(file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid TOML: nested deeper than {MAX_DEPTH} levels") from None
    check_depth(raw, str(file))
    return raw, text


def check_depth(value: object, label: str) -> None:
    """Refuse documents nested deeper than MAX_DEPTH (iteratively: deep input cannot recurse)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{label}: tables or arrays nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _read_text(file: Path) -> str:
    """Open without blocking (a FIFO would wait for a writer), then insist on a regular file."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found (pass a path or create pilothouse.toml)") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{file}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{_short(file)}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{file}: is a directory, expected a TOML file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{file}: not a regular file (a FIFO, socket or device); expected a TOML file")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{file}: {info.st_size} bytes; a config file may have at most {MAX_BYTES}")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{file}: larger than {MAX_BYTES} bytes; a config file may have at most that")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None


def _short(file: Path) -> str:
    """A path fit for one line: a name too long to open is shown by its start and length."""
    text = str(file)
    return text if len(text) <= 120 else f"{text[:60]}... ({len(text)} characters)"

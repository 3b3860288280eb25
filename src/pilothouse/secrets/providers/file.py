"""Secrets from one local file for development: TOML (`[db] url = "…"`) or `.env`
(`SHOP_DB_URL=…`, the same names as the env source).

The file is refused when other users can read it: a secrets file with mode 0644 is a leak
waiting for a shared machine or a container image layer.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pilothouse.config.secret_ref import SecretRef
from pilothouse.errors import SecretError
from pilothouse.secrets.providers.base import Found
from pilothouse.secrets.providers.env import env_name


def parse_dotenv(text: str, path: Path) -> dict[str, str]:
    """`KEY=value` lines; `export`, comments, blank lines and single/double quotes allowed."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SecretError(f"{path}:{number}: expected KEY=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _flatten(table: dict[str, Any], prefix: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}.", path))
        elif isinstance(value, str):
            out[name] = value
        else:
            raise SecretError(f"{path}: {name}: expected a string value")
    return out


class FileProvider:
    """Parses the file when it changed (inode, size, mtime) and answers from the parsed copy."""

    name = "file"

    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.service = service
        self._signature: tuple[int, int, int] | None = None
        self._values: dict[str, str] = {}
        self._mtime = 0.0
        self._missing = False

    def where(self, ref: SecretRef) -> str:
        key = ref.secret if self._is_toml else env_name(self.service, ref)
        missing = " (the file does not exist)" if self._missing else ""
        return f"file {self.path} [{key}]{missing}"

    @property
    def _is_toml(self) -> bool:
        return self.path.suffix == ".toml"

    def lookup(self, ref: SecretRef) -> Found | None:
        self._load()
        key = ref.secret if self._is_toml else env_name(self.service, ref)
        value = self._values.get(key)
        if value is None:
            return None
        return Found(
            value.strip(),
            f"{self.path} [{key}]",
            updated_at=self._mtime,
            version=str(self._signature),
        )

    def _load(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            # The development file is the last source, absent where the others answer (a pod): a
            # secret nobody else has is "not found", and that error names this file as missing.
            self._values, self._signature, self._missing = {}, None, True
            return
        except OSError as exc:
            raise SecretError(f"cannot read secrets file {self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):  # chmod advice would be wrong, and a FIFO would block
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SecretError(f"secrets file {self.path} is {kind}; [secrets].file must name a file")
        if info.st_mode & stat.S_IROTH:
            raise SecretError(
                f"secrets file {self.path} is readable by every user "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {self.path}"
            )
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        if signature == self._signature:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"cannot read secrets file {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretError(f"secrets file {self.path} is not UTF-8 text") from None
        if self._is_toml:
            try:
                values = _flatten(tomllib.loads(text), "", self.path)
            except tomllib.TOMLDecodeError as exc:
                raise SecretError(f"secrets file {self.path}: invalid TOML: {exc}") from None
        else:
            values = parse_dotenv(text, self.path)
        self._values, self._signature, self._mtime = values, signature, info.st_mtime
        self._missing = False

    def close(self) -> None:
        self._values = {}


def open_file_provider(configured: str, config_dir: Path | None, service: str) -> FileProvider:
    """The provider for `[secrets].file`, relative paths taken from the config file's directory."""
    path = Path(os.path.expanduser(configured))
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    return FileProvider(path, service)

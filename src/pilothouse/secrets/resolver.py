"""Resolve `SecretRef`s from the configured sources, first hit wins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pilothouse.config.model import Config
from pilothouse.config.secret_ref import SecretRef
from pilothouse.errors import SecretError
from pilothouse.redaction import register_secret


def env_name(service: str, ref: SecretRef) -> str:
    """The environment variable a secret is read from: `<SERVICE>_<NAME>` upper-cased, with
    '.' and '-' as '_' (service "shop", secret "db.url" -> SHOP_DB_URL), unless `env` is set."""
    if ref.env:
        return ref.env
    raw = f"{service}_{ref.secret}"
    return raw.upper().replace(".", "_").replace("-", "_")


class SecretResolver:
    """Looks secrets up in the sources the config names and registers values for redaction."""

    def __init__(self, config: Config, environ: Mapping[str, str] | None = None) -> None:
        self._config = config
        self._environ = os.environ if environ is None else environ

    def mount_path(self, ref: SecretRef) -> Path:
        """Where a Kubernetes-mounted secret lives: `<mount_dir>/<group>/<key>`."""
        group, _, key = ref.secret.rpartition(".")
        return Path(self._config.secrets.mount_dir) / (group or "default") / key

    def get(self, ref: SecretRef) -> str:
        """The value of `ref`; SecretError lists every place looked if none has it."""
        tried: list[str] = []
        for source in self._config.secrets.sources:
            if source == "env":
                name = env_name(self._config.service.name, ref)
                tried.append(f"env {name}")
                value = self._environ.get(name)
            elif source == "kubernetes":
                path = self.mount_path(ref)
                tried.append(f"file {path}")
                value = _read(path)
            else:
                continue
            if value:
                register_secret(value)
                return value
        raise SecretError(f"secret '{ref.secret}' not found; looked in: {', '.join(tried)}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None

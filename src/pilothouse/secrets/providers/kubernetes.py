"""Kubernetes-mounted Secrets: one file per key under `<mount_dir>/<group>/<key>`.

Kubernetes rotates a mounted Secret by writing a new timestamped directory and atomically
renaming the `..data` symlink to it; each key file is a symlink through `..data`. Reading the key
path fresh each time therefore sees either the whole old or the whole new set, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path

from pilothouse.config.secret_ref import SecretRef, mount_path
from pilothouse.errors import SecretError
from pilothouse.secrets.providers.base import Found

__all__ = ["KubernetesProvider", "mount_path", "read_secret_file"]


def read_secret_file(path: Path) -> Found | None:
    """A one-value file: stripped text, None if absent; SecretError naming the path if unreadable."""
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None
    return Found(text, str(path), updated_at=stat.st_mtime, version=f"{stat.st_ino}:{stat.st_mtime_ns}")


class KubernetesProvider:
    """Reads `<mount_dir>/<group>/<key>` on every lookup (cheap; rotation needs a fresh read)."""

    name = "kubernetes"

    def __init__(self, mount_dir: str | Path) -> None:
        self.mount_dir = Path(mount_dir)

    def where(self, ref: SecretRef) -> str:
        return f"kubernetes {mount_path(self.mount_dir, ref)}"

    def lookup(self, ref: SecretRef) -> Found | None:
        return read_secret_file(mount_path(self.mount_dir, ref))

    def close(self) -> None:
        """Nothing to release."""

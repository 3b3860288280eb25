"""Secrets from environment variables: `<SERVICE>_<NAME>` or the reference's own `env`."""

from __future__ import annotations

from collections.abc import Mapping

from pilothouse.config.secret_ref import SecretRef, env_name
from pilothouse.secrets.providers.base import Found

__all__ = ["EnvProvider", "env_name"]


class EnvProvider:
    """Looks a secret up in a mapping (the process environment by default)."""

    name = "env"

    def __init__(self, service: str, environ: Mapping[str, str]) -> None:
        self.service = service
        self.environ = environ

    def where(self, ref: SecretRef) -> str:
        return f"env {env_name(self.service, ref)}"

    def lookup(self, ref: SecretRef) -> Found | None:
        name = env_name(self.service, ref)
        value = self.environ.get(name)
        return None if value is None else Found(value.strip(), f"${name}")

    def close(self) -> None:
        """Nothing to release."""

"""Secrets from environment variables: `<SERVICE>_<NAME>` or the reference's own `env`."""

from __future__ import annotations

from collections.abc import Mapping

from pilothouse.config.secret_ref import SecretRef
from pilothouse.secrets.providers.base import Found


def env_name(service: str, ref: SecretRef) -> str:
    """The environment variable a secret is read from: `<SERVICE>_<NAME>` upper-cased, with
    '.' and '-' as '_' (service "shop", secret "db.url" -> SHOP_DB_URL), unless `env` is set."""
    if ref.env:
        return ref.env
    raw = f"{service}_{ref.secret}"
    return raw.upper().replace(".", "_").replace("-", "_")


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

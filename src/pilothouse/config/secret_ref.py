"""Secret references: config values that name a secret instead of holding it.

`url = { secret = "db.url" }` in the file becomes `SecretRef(secret="db.url")`. The resolver
(`pilothouse.secrets`) turns a reference into a value at run time; the config never holds one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from pilothouse.config.base import Section
from pilothouse.config.credentials import advice, credential_in

_NAME = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$")


class SecretRef(Section):
    """A reference to a secret by dotted name, e.g. "db.url" (group "db", key "url")."""

    secret: str = Field(description="dotted secret name, e.g. 'db.url'")
    env: str | None = Field(default=None, description="explicit environment variable to read")
    required: bool = True

    @field_validator("secret")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected a dotted lowercase secret name such as 'db.url' or 'redis.password'")
        return value

    def __str__(self) -> str:
        return f"secret:{self.secret}"


ResolveSecret = Callable[[SecretRef], str]
"""A secret's current plain value (the secrets feature's resolver): what lower layers, such as
readiness checks, are handed instead of importing `pilothouse.secrets`."""


def env_name(service: str, ref: SecretRef) -> str:
    """The environment variable a secret is read from: `<SERVICE>_<NAME>` upper-cased, with
    '.' and '-' as '_' (service "shop", secret "db.url" -> SHOP_DB_URL), unless `env` is set.
    The `env` source reads it; the deploy bundle sets it."""
    if ref.env:
        return ref.env
    raw = f"{service}_{ref.secret}"
    return raw.upper().replace(".", "_").replace("-", "_")


def mount_path(mount_dir: str | Path, ref: SecretRef) -> Path:
    """Where a mounted secret lives: `<mount_dir>/<group>/<key>` ("db.url" -> db/url); a name
    without a dot lives in the group "default". The `kubernetes` source reads it; the deploy
    bundle mounts it."""
    group, _, key = ref.secret.rpartition(".")
    return Path(mount_dir) / (group or "default") / key


def refuse_embedded_password(value: str | SecretRef) -> str | SecretRef:
    """Reject a literal that carries a credential (URL password, `?password=`, `password=`):
    it belongs in a secret reference."""
    if isinstance(value, str):
        what = credential_in(value)
        if what is not None:
            raise ValueError(advice(what))
    return value


def http_url(value: str) -> str:
    """An http:// or https:// URL with a host and without a password in it (a field validator)."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url_with_host(value)


def url_with_host(value: str) -> str:
    """A URL naming a host ("http://" alone names nothing) and carrying no password."""
    try:
        host = urlsplit(value).hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError("expected a URL with a host, e.g. 'http://api.internal:8080/health'")
    refuse_embedded_password(value)
    return value


def url_of(*schemes: str) -> Callable[[str | SecretRef], str | SecretRef]:
    """A field validator: a literal URL must use one of `schemes` and carry no password."""
    expected = " or ".join(f"{s}://" for s in schemes)

    def check(value: str | SecretRef) -> str | SecretRef:
        refuse_embedded_password(value)  # first: a libpq DSN with a password is that, not a bad scheme
        if isinstance(value, str) and urlsplit(value).scheme not in schemes:
            raise ValueError(f"expected a {expected} URL")
        return value

    return check

"""`[secrets]`: where secret references are looked up, in order (first hit wins), and how
rotated values are noticed.

```toml
[secrets]
sources = ["kubernetes", "vault", "env"]
declare = [{ secret = "payments.api-key" }]   # secrets the app reads itself

[secrets.vault]
address = "https://vault.internal:8200"
auth = { method = "approle", role_id = "…", secret_id_env = "VAULT_SECRET_ID" }
dynamic = { db = "database/creds/shop" }
```
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef
from pilothouse.durations import Duration

SourceName = Literal["kubernetes", "env", "file", "vault"]

_VAULT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_GROUP = re.compile(r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")


def _vault_path(value: str) -> str:
    if not _VAULT_PATH.match(value):
        raise ValueError("expected a Vault path such as 'secret' or 'database/creds/shop' (no leading '/')")
    return value


class TokenAuth(Section):
    """A token from the environment or a file (e.g. written by a Vault Agent sink)."""

    method: Literal["token"] = "token"
    token_env: str = Field(default="VAULT_TOKEN", description="environment variable holding the token")
    token_file: str | None = Field(default=None, description="file holding the token (wins over token_env)")


class AppRoleAuth(Section):
    """AppRole login: a role id (not secret) plus a secret id from the environment or a file."""

    method: Literal["approle"]
    role_id: str
    secret_id_env: str = "VAULT_SECRET_ID"  # noqa: S105 - a variable name, not a secret
    secret_id_file: str | None = None
    mount: str = "approle"


class KubernetesAuth(Section):
    """Kubernetes auth: the pod's service-account JWT is exchanged for a Vault token."""

    method: Literal["kubernetes"]
    role: str
    jwt_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    mount: str = "kubernetes"

    @field_validator("jwt_file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        """The deploy bundle projects the token at this path (its directory is the mount path,
        which Kubernetes requires to be absolute); a relative one would be read from the
        working directory instead."""
        if not value.startswith("/") or value.endswith("/"):
            raise ValueError("expected the absolute path of the token file, e.g. /var/run/vault/sa/jwt")
        return value


VaultAuth = Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")]


class VaultConfig(Section):
    """HashiCorp Vault or OpenBao (same HTTP API, both through hvac).

    Secret "db.url" is field `url` of the KV v2 secret `<path>/db` in `kv_mount`, unless its
    group ("db") is listed in `dynamic`, then it is field `url` of a leased read of that path.
    """

    address: str | None = Field(default=None, description="default: $VAULT_ADDR, then $BAO_ADDR")
    namespace: str | None = None
    kv_mount: str = "secret"
    path: str | None = Field(default=None, description="KV path prefix; default: the service name")
    auth: VaultAuth = Field(default_factory=TokenAuth)
    timeout: Duration = 5.0
    refresh_interval: Duration = Field(default=60.0, description="how often KV values are re-read")
    ca_cert: str | None = None
    dynamic: dict[str, str] = Field(default_factory=dict, description="secret group -> leased path")

    _kv_mount = field_validator("kv_mount")(_vault_path)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _vault_path(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("dynamic")
    @classmethod
    def _dynamic(cls, value: dict[str, str]) -> dict[str, str]:
        for group, path in value.items():
            if not _GROUP.match(group):
                raise ValueError(f"'{group}' is not a secret group such as 'db'")
            _vault_path(path)
        return value

    @field_validator("refresh_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value < 1:
            raise ValueError("expected at least '1s'")
        return value


class SecretsConfig(Section):
    sources: list[SourceName] = Field(default_factory=lambda: list[SourceName](["kubernetes", "env"]))
    mount_dir: str = Field(
        default="/var/run/secrets/pilothouse",
        description="absolute: Kubernetes mounts Secrets here, and the container reads its config "
        "from another directory than the one it was generated from",
    )
    file: str | None = Field(default=None, description="TOML or .env file for development")
    watch_interval: Duration = Field(
        default=2.0,
        description="how often file sources are polled for rotation; '0s' turns watching off",
    )
    declare: list[SecretRef] = Field(
        default_factory=list, description="secrets the app reads itself (not referenced elsewhere)"
    )
    vault: VaultConfig | None = None

    @field_validator("mount_dir")
    @classmethod
    def _absolute_mount(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(
                "expected an absolute path (a volume mountPath must be absolute, and a relative one "
                "would be read from wherever the config file sits); use the 'file' source for a "
                "development secrets file"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[SourceName]) -> list[SourceName]:
        if not value:
            raise ValueError("expected at least one of 'kubernetes', 'env', 'file', 'vault'")
        if len(set(value)) != len(value):
            raise ValueError("each source may appear once")
        return value

    @model_validator(mode="after")
    def _source_settings(self) -> SecretsConfig:
        if "file" in self.sources and not self.file:
            raise ValueError("sources lists 'file' but [secrets].file is not set")
        if "vault" in self.sources and self.vault is None:
            raise ValueError("sources lists 'vault' but there is no [secrets.vault] table")
        return self

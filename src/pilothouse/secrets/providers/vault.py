"""HashiCorp Vault and OpenBao (the same HTTP API) through `hvac` (extra `vault`).

Secret "db.url" is the field `url` of the KV v2 secret `<path>/db`; a group listed in
`[secrets.vault].dynamic` is read from that path instead and holds a lease (database
credentials and the like). The provider keeps its own token and leases alive:

- KV values are cached for `refresh_interval`, then read again (a new version is a rotation);
- a lease is renewed once two thirds of its TTL have passed; when it cannot be renewed (or its
  max TTL is near) fresh credentials are read before the old ones expire;
- the login token is renewed the same way, or the login is repeated (AppRole, Kubernetes).

Every failure is a `SecretError` naming the server and what was attempted, never a value.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pilothouse.config.secret_ref import SecretRef
from pilothouse.config.secrets import AppRoleAuth, KubernetesAuth, TokenAuth, VaultConfig
from pilothouse.errors import SecretError
from pilothouse.redaction import redact, register_secret
from pilothouse.secrets import audit
from pilothouse.secrets.providers.base import Found

_HVAC_SUFFIX = re.compile(r", on (get|post|put|delete|list|patch|head) \S+$", re.IGNORECASE)

RENEW_AT = 2 / 3
"""Renew a lease or token once this fraction of its TTL has passed."""


@dataclass(slots=True)
class _Lease:
    lease_id: str
    ttl: float
    renewable: bool
    expires_at: float  # monotonic
    obtained_wall: float
    data: dict[str, Any]

    def due(self, now: float) -> bool:
        return now >= self.expires_at - self.ttl * (1 - RENEW_AT)


@dataclass(slots=True)
class _KvEntry:
    data: dict[str, Any]
    version: str
    created: float | None
    fetched_at: float  # monotonic


def _split(ref: SecretRef) -> tuple[str, str]:
    group, _, key = ref.secret.rpartition(".")
    return group or "default", key


def _parse_time(text: object) -> float | None:
    """Epoch seconds of a Vault timestamp ("2024-05-01T10:00:00.123456789Z"), None if unparsable."""
    if not isinstance(text, str):
        return None
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        return None


class VaultProvider:
    """KV v2 and leased reads from one Vault/OpenBao server with one login."""

    name = "vault"

    def __init__(
        self, config: VaultConfig, service: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.prefix = config.path or service
        self.environ = os.environ if environ is None else environ
        self.address = (
            config.address or self.environ.get("VAULT_ADDR") or self.environ.get("BAO_ADDR")
        )
        self._client: Any = None
        self._token_period = 0.0  # TTL granted at login; 0 = never expires
        self._token_expires_at = 0.0  # monotonic
        self._token_renewable = False
        self._kv: dict[str, _KvEntry] = {}
        self._leases: dict[str, _Lease] = {}
        self.renewals = 0  # lease renewals done (tests read these)
        self.logins = 0

    # -- Provider ---------------------------------------------------------------------------

    def where(self, ref: SecretRef) -> str:
        group, key = _split(ref)
        if group in self.config.dynamic:
            return f"vault {self.config.dynamic[group]} [{key}]"
        return f"vault {self.config.kv_mount}/{self.prefix}/{group} [{key}]"

    def lookup(self, ref: SecretRef) -> Found | None:
        self._session()  # every poll: keeps the token renewed even while reads come from cache
        group, key = _split(ref)
        if group in self.config.dynamic:
            lease = self._lease(group)
            if lease is None or key not in lease.data:
                return None
            where = f"{self.config.dynamic[group]} [{key}]"
            return Found(
                str(lease.data[key]), where, updated_at=lease.obtained_wall, version=lease.lease_id
            )
        entry = self._kv_entry(group)
        if entry is None or key not in entry.data:
            return None
        where = f"{self.config.kv_mount}/{self.prefix}/{group} [{key}]"
        return Found(str(entry.data[key]), where, updated_at=entry.created, version=entry.version)

    def close(self) -> None:
        """Revoke held leases (the credentials die with the process) and a token we logged in for."""
        if self._client is None:
            return
        for lease in self._leases.values():
            if lease.lease_id:
                with contextlib.suppress(Exception):
                    self._client.sys.revoke_lease(lease.lease_id)
        self._leases.clear()
        if not isinstance(self.config.auth, TokenAuth):
            with contextlib.suppress(Exception):
                self._client.auth.token.revoke_self()
        with contextlib.suppress(Exception):
            self._client.adapter.close()
        self._client = None

    # -- reads ------------------------------------------------------------------------------

    def _kv_entry(self, group: str) -> _KvEntry | None:
        now = time.monotonic()
        cached = self._kv.get(group)
        if cached is not None and now - cached.fetched_at < self.config.refresh_interval:
            return cached
        path = f"{self.prefix}/{group}"
        client = self._session()
        with self._errors(f"reading {self.config.kv_mount}/{path}"):
            try:
                response = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.config.kv_mount, raise_on_deleted_version=True
                )
            except _hvac().exceptions.InvalidPath:
                self._kv.pop(group, None)
                return None
        data = response.get("data") or {}
        metadata = data.get("metadata") or {}
        entry = _KvEntry(
            dict(data.get("data") or {}),
            str(metadata.get("version", "")),
            _parse_time(metadata.get("created_time")),
            now,
        )
        self._kv[group] = entry
        return entry

    def _lease(self, group: str) -> _Lease | None:
        now = time.monotonic()
        lease = self._leases.get(group)
        if lease is not None and not lease.due(now):
            return lease
        if lease is not None and lease.renewable and self._renew(group, lease, now):
            return lease
        return self._read_leased(group)

    def _renew(self, group: str, lease: _Lease, now: float) -> bool:
        """Extend `lease`; False when it cannot be extended far enough (read new credentials)."""
        try:
            with self._errors(f"renewing the lease of {self.config.dynamic[group]}"):
                response = self._session().sys.renew_lease(
                    lease_id=lease.lease_id, increment=int(lease.ttl)
                )
        except SecretError:
            return False
        granted = float(response.get("lease_duration") or 0)
        if granted < lease.ttl * (1 - RENEW_AT):  # the max TTL is near: rotate instead
            return False
        lease.expires_at = now + granted
        self.renewals += 1
        audit.record("renewed", group, "vault", self.config.dynamic[group], version=lease.lease_id)
        return True

    def _read_leased(self, group: str) -> _Lease | None:
        path = self.config.dynamic[group]
        client = self._session()
        with self._errors(f"reading {path}"):
            try:
                response = client.read(path)
            except _hvac().exceptions.InvalidPath:
                return None
        if not response:
            return None
        ttl = float(response.get("lease_duration") or 0) or self.config.refresh_interval
        lease = _Lease(
            lease_id=str(response.get("lease_id") or ""),
            ttl=ttl,
            renewable=bool(response.get("renewable")) and bool(response.get("lease_id")),
            expires_at=time.monotonic() + ttl,
            obtained_wall=time.time(),
            data=dict(response.get("data") or {}),
        )
        self._leases[group] = lease
        return lease

    # -- the session --------------------------------------------------------------------------

    def _session(self) -> Any:
        """A client with a live token: logs in on first use, renews or logs in again when due."""
        now = time.monotonic()
        if self._client is not None and (self._token_period == 0 or now < self._token_due()):
            return self._client
        if self._client is not None and self._token_renewable:
            try:
                with self._errors("renewing the Vault token"):
                    auth = self._client.auth.token.renew_self()["auth"]
                granted = float(auth.get("lease_duration") or 0)
                if granted >= self._token_period * (1 - RENEW_AT):  # extended far enough
                    self._token_expires_at = now + granted
                    return self._client
            except SecretError:
                pass  # fall through to a fresh login
        self._login()
        return self._client

    def _token_due(self) -> float:
        return self._token_expires_at - self._token_period * (1 - RENEW_AT)

    def _login(self) -> None:
        hvac = _hvac()
        if not self.address:
            raise SecretError("no Vault address: set [secrets.vault].address or $VAULT_ADDR")
        cfg = self.config
        client = hvac.Client(
            url=self.address,
            namespace=cfg.namespace,
            timeout=cfg.timeout,
            verify=cfg.ca_cert if cfg.ca_cert else True,
        )
        auth = cfg.auth
        if isinstance(auth, TokenAuth):
            client.token = self._credential(auth.token_file, auth.token_env, "token")
            with self._errors("checking the Vault token"):
                data = client.auth.token.lookup_self()["data"]
            ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
        else:
            with self._errors(f"logging in with {auth.method} auth"):
                result = self._auth_login(client, auth)["auth"]
            ttl, renewable = float(result.get("lease_duration") or 0), bool(result.get("renewable"))
        register_secret(client.token)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.adapter.close()
        self._client = client
        self.logins += 1
        # ttl 0: a token that never expires (e.g. a root or periodic-less service token)
        self._token_period, self._token_renewable = ttl, renewable
        self._token_expires_at = time.monotonic() + ttl

    def _auth_login(self, client: Any, auth: AppRoleAuth | KubernetesAuth) -> Any:
        if isinstance(auth, AppRoleAuth):
            secret_id = self._credential(
                auth.secret_id_file, auth.secret_id_env, "AppRole secret id"
            )
            return client.auth.approle.login(
                role_id=auth.role_id, secret_id=secret_id, mount_point=auth.mount
            )
        jwt = self._credential(auth.jwt_file, None, "Kubernetes service-account token")
        return client.auth.kubernetes.login(role=auth.role, jwt=jwt, mount_point=auth.mount)

    def _credential(self, file: str | None, env: str | None, what: str) -> str:
        """A login credential from its file (preferred) or environment variable."""
        if file:
            try:
                value = Path(file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(
                    f"cannot read the Vault {what} from {file}: {exc.strerror}"
                ) from None
        else:
            value = self.environ.get(env or "", "").strip()
        if not value:
            source = file or f"${env}"
            raise SecretError(f"no Vault {what}: {source} is empty or not set")
        register_secret(value)
        return value

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn hvac/requests failures into one-line SecretErrors naming the server."""
        hvac = _hvac()
        import requests

        where = f"Vault at {self.address}"
        try:
            yield
        except hvac.exceptions.Forbidden:
            raise SecretError(
                f"{where} refused {action}: permission denied (token expired or revoked, or the policy "
                "does not allow it)"
            ) from None
        except (hvac.exceptions.Unauthorized, hvac.exceptions.InvalidRequest) as exc:
            raise SecretError(f"{where} refused {action}: {_first(exc)}") from None
        except requests.exceptions.Timeout:
            raise SecretError(
                f"{where} did not answer {action} within {self.config.timeout:g}s"
            ) from None
        except requests.exceptions.ConnectionError:
            raise SecretError(f"{where} is unreachable ({action}): connection failed") from None
        except hvac.exceptions.VaultError as exc:
            if isinstance(exc, hvac.exceptions.InvalidPath):
                raise
            raise SecretError(
                f"{where}: {action} failed: {type(exc).__name__}: {_first(exc)}"
            ) from None


def _first(exc: BaseException) -> str:
    """The server's first error line, without hvac's ", on post <url>" suffix."""
    lines = str(exc).strip().splitlines()
    text = _HVAC_SUFFIX.sub("", lines[0]) if lines else type(exc).__name__
    return redact(text)[:200]


def _hvac() -> Any:
    try:
        import hvac
    except ImportError:  # pragma: no cover - depends on installed extras
        raise SecretError(
            "the vault source needs the 'vault' extra: pip install 'pilothouse[vault]'"
        ) from None
    return hvac

"""A Vault/OpenBao session: one login and its token kept alive, and hvac errors as one line.

The token is renewed once two thirds of its TTL have passed; when it cannot be renewed far
enough the login is repeated (AppRole, Kubernetes). A static token is checked, never renewed.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pilothouse.config.secrets import AppRoleAuth, KubernetesAuth, TokenAuth, VaultConfig
from pilothouse.errors import SecretError
from pilothouse.redaction import redact, register_secret

_HVAC_SUFFIX = re.compile(r", on (get|post|put|delete|list|patch|head) \S+$", re.IGNORECASE)

RENEW_AT = 2 / 3
"""Renew a lease or token once this fraction of its TTL has passed."""


class VaultSession:
    """The client of one server with a live token (`client()`), and the error translation."""

    def __init__(self, config: VaultConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self.environ = environ
        self.address = config.address or environ.get("VAULT_ADDR") or environ.get("BAO_ADDR")
        self._client: Any = None
        self._token_period = 0.0  # TTL granted at login; 0 = never expires
        self._token_expires_at = 0.0  # monotonic
        self._token_renewable = False
        self.logins = 0  # tests read it

    @property
    def current(self) -> Any:
        """The client as it is (None before the first login or after `close`), without renewing."""
        return self._client

    def client(self) -> Any:
        """A client with a live token: logs in on first use, renews or logs in again when due."""
        now = time.monotonic()
        if self._client is not None and (self._token_period == 0 or now < self._token_due()):
            return self._client
        if self._client is not None and self._token_renewable:
            try:
                with self.errors("renewing the Vault token"):
                    auth = self._client.auth.token.renew_self()["auth"]
                granted = float(auth.get("lease_duration") or 0)
                if granted >= self._token_period * (1 - RENEW_AT):  # extended far enough
                    self._token_expires_at = now + granted
                    return self._client
            except SecretError:
                pass  # fall through to a fresh login
        self._login()
        return self._client

    def close(self) -> None:
        """Revoke a token we logged in for (not a configured static one) and close the client."""
        if self._client is None:
            return
        if not isinstance(self.config.auth, TokenAuth):
            with contextlib.suppress(Exception):
                self._client.auth.token.revoke_self()
        with contextlib.suppress(Exception):
            self._client.adapter.close()
        self._client = None

    def _token_due(self) -> float:
        return self._token_expires_at - self._token_period * (1 - RENEW_AT)

    def _login(self) -> None:
        hvac = hvac_module()
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
            with self.errors("checking the Vault token"):
                data = client.auth.token.lookup_self()["data"]
            ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
        else:
            with self.errors(f"logging in with {auth.method} auth"):
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
            secret_id = self._credential(auth.secret_id_file, auth.secret_id_env, "AppRole secret id")
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
                raise SecretError(f"cannot read the Vault {what} from {file}: {exc.strerror}") from None
        else:
            value = self.environ.get(env or "", "").strip()
        if not value:
            source = file or f"${env}"
            raise SecretError(f"no Vault {what}: {source} is empty or not set")
        register_secret(value)
        return value

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn hvac/requests failures into one-line SecretErrors naming the server (a missing
        path, `InvalidPath`, passes through: the readers answer "not found")."""
        hvac = hvac_module()
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
            raise SecretError(f"{where} did not answer {action} within {self.config.timeout:g}s") from None
        except requests.exceptions.ConnectionError:
            raise SecretError(f"{where} is unreachable ({action}): connection failed") from None
        except hvac.exceptions.VaultError as exc:
            if isinstance(exc, hvac.exceptions.InvalidPath):
                raise
            raise SecretError(f"{where}: {action} failed: {type(exc).__name__}: {_first(exc)}") from None


def _first(exc: BaseException) -> str:
    """The server's first error line, without hvac's ", on post <url>" suffix."""
    lines = str(exc).strip().splitlines()
    text = _HVAC_SUFFIX.sub("", lines[0]) if lines else type(exc).__name__
    return redact(text)[:200]


def hvac_module() -> Any:
    try:
        import hvac
    except ImportError:  # pragma: no cover - depends on installed extras
        raise SecretError(
            "the vault source needs the 'vault' extra: pip install 'pilothouse[vault]'"
        ) from None
    return hvac

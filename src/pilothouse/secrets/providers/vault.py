"""HashiCorp Vault and OpenBao (the same HTTP API) through `hvac` (extra `vault`).

Secret "db.url" is the field `url` of the KV v2 secret `<path>/db`; a group listed in
`[secrets.vault].dynamic` is read from that path instead and holds a lease (database
credentials and the like). The provider keeps its own token and leases alive, each in its own
module:

- `vault_session.py`: the login and its token (renewed, or the login repeated: AppRole,
  Kubernetes), and hvac failures as one line;
- `vault_kv.py`: KV values, cached for `refresh_interval`, then read again (a new version is a
  rotation);
- `vault_leases.py`: a lease is renewed once two thirds of its TTL have passed; when it cannot
  be renewed (or its max TTL is near) fresh credentials are read before the old ones expire.

Every failure is a `SecretError` naming the server and what was attempted, never a value.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from pilothouse.config.secret_ref import SecretRef
from pilothouse.config.secrets import VaultConfig
from pilothouse.secrets.providers.base import Found
from pilothouse.secrets.providers.vault_kv import KvReader
from pilothouse.secrets.providers.vault_leases import Leases
from pilothouse.secrets.providers.vault_session import VaultSession


def _split(ref: SecretRef) -> tuple[str, str]:
    group, _, key = ref.secret.rpartition(".")
    return group or "default", key


class VaultProvider:
    """KV v2 and leased reads from one Vault/OpenBao server with one login."""

    name = "vault"

    def __init__(self, config: VaultConfig, service: str, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.session = VaultSession(config, os.environ if environ is None else environ)
        self.kv = KvReader(self.session, config.path or service)
        self.leases = Leases(self.session)

    @property
    def renewals(self) -> int:
        """Lease renewals done (tests read it)."""
        return self.leases.renewals

    @property
    def logins(self) -> int:
        return self.session.logins

    def where(self, ref: SecretRef) -> str:
        group, key = _split(ref)
        if group in self.config.dynamic:
            return f"vault {self.config.dynamic[group]} [{key}]"
        return f"vault {self.kv.where(group)} [{key}]"

    def lookup(self, ref: SecretRef) -> Found | None:
        self.session.client()  # every poll: keeps the token renewed even while reads come from cache
        group, key = _split(ref)
        if group in self.config.dynamic:
            lease = self.leases.get(group)
            if lease is None or key not in lease.data:
                return None
            where = f"{self.config.dynamic[group]} [{key}]"
            return Found(str(lease.data[key]), where, updated_at=lease.obtained_wall, version=lease.lease_id)
        entry = self.kv.entry(group)
        if entry is None or key not in entry.data:
            return None
        where = f"{self.kv.where(group)} [{key}]"
        return Found(str(entry.data[key]), where, updated_at=entry.created, version=entry.version)

    def one_pass(self) -> contextlib.AbstractContextManager[None]:
        """A refresh pass: each lease is decided once for all of its keys (`Leases.one_pass`)."""
        return self.leases.one_pass()

    def close(self) -> None:
        """Revoke held leases (the credentials die with the process) and a token we logged in for."""
        self.leases.revoke_all()
        self.session.close()

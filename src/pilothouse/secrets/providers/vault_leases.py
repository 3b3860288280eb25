"""Leased reads (`[secrets.vault].dynamic`: database credentials and the like).

A lease is renewed once two thirds of its TTL have passed; when it cannot be renewed (or its
max TTL is near) fresh credentials are read before the old ones expire. `revoke_all` ends them
with the process.

Within a refresh pass (`one_pass`) a group's lease is decided once, for all of its keys: a
lease renewed or falling due between the lookup of `db.username` and that of `db.password`
would otherwise hand the app the old username with the new password until the next pass.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pilothouse.errors import SecretError
from pilothouse.secrets import audit
from pilothouse.secrets.providers.vault_session import RENEW_AT, VaultSession, hvac_module


@dataclass(slots=True)
class Lease:
    lease_id: str
    ttl: float
    renewable: bool
    expires_at: float  # monotonic
    obtained_wall: float
    data: dict[str, Any]

    def due(self, now: float) -> bool:
        return now >= self.expires_at - self.ttl * (1 - RENEW_AT)


class Leases:
    """One lease per dynamic group, read, renewed or replaced when due."""

    def __init__(self, session: VaultSession) -> None:
        self.session = session
        self.paths = session.config.dynamic
        self._held: dict[str, Lease] = {}
        self._this_pass: dict[str, Lease | None] | None = None
        self.renewals = 0  # lease renewals done (tests read it)

    @contextlib.contextmanager
    def one_pass(self) -> Iterator[None]:
        """Every lookup of a group inside gets the lease its first lookup got."""
        self._this_pass = {}
        try:
            yield
        finally:
            self._this_pass = None

    def get(self, group: str) -> Lease | None:
        decided = self._this_pass
        if decided is None:
            return self._get(group)
        if group not in decided:
            decided[group] = self._get(group)
        return decided[group]

    def _get(self, group: str) -> Lease | None:
        now = time.monotonic()
        lease = self._held.get(group)
        if lease is not None and not lease.due(now):
            return lease
        if lease is not None and lease.renewable and self._renew(group, lease, now):
            return lease
        return self._read(group)

    def revoke_all(self) -> None:
        """Revoke every held lease (best effort: the process is ending)."""
        client = self.session.current
        if client is not None:
            for lease in self._held.values():
                if lease.lease_id:
                    with contextlib.suppress(Exception):
                        client.sys.revoke_lease(lease.lease_id)
        self._held.clear()

    def _renew(self, group: str, lease: Lease, now: float) -> bool:
        """Extend `lease`; False when it cannot be extended far enough (read new credentials)."""
        try:
            with self.session.errors(f"renewing the lease of {self.paths[group]}"):
                response = self.session.client().sys.renew_lease(
                    lease_id=lease.lease_id, increment=int(lease.ttl)
                )
        except SecretError:
            return False
        granted = float(response.get("lease_duration") or 0)
        if granted <= lease.ttl * (1 - RENEW_AT):  # the max TTL is near (due again at once): rotate
            return False
        lease.expires_at = now + granted
        self.renewals += 1
        audit.record("renewed", group, "vault", self.paths[group], version=lease.lease_id)
        return True

    def _read(self, group: str) -> Lease | None:
        path = self.paths[group]
        client = self.session.client()
        with self.session.errors(f"reading {path}"):
            try:
                response = client.read(path)
            except hvac_module().exceptions.InvalidPath:
                return None
        if not response:
            return None
        ttl = float(response.get("lease_duration") or 0) or self.session.config.refresh_interval
        lease = Lease(
            lease_id=str(response.get("lease_id") or ""),
            ttl=ttl,
            renewable=bool(response.get("renewable")) and bool(response.get("lease_id")),
            expires_at=time.monotonic() + ttl,
            obtained_wall=time.time(),
            data=dict(response.get("data") or {}),
        )
        self._held[group] = lease
        return lease

"""KV v2 reads: one secret per group (`<kv_mount>/<prefix>/<group>`), cached for
`[secrets.vault].refresh_interval`, then read again (a new version is a rotation)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pilothouse.secrets.providers.vault_session import VaultSession, hvac_module


@dataclass(slots=True)
class KvEntry:
    data: dict[str, Any]
    version: str
    created: float | None
    fetched_at: float  # monotonic


class KvReader:
    def __init__(self, session: VaultSession, prefix: str) -> None:
        self.session = session
        self.config = session.config
        self.prefix = prefix
        self._cache: dict[str, KvEntry] = {}

    def where(self, group: str) -> str:
        return f"{self.config.kv_mount}/{self.prefix}/{group}"

    def entry(self, group: str) -> KvEntry | None:
        """The group's secret, from the cache while fresh; None when the path does not exist."""
        now = time.monotonic()
        cached = self._cache.get(group)
        if cached is not None and now - cached.fetched_at < self.config.refresh_interval:
            return cached
        path = f"{self.prefix}/{group}"
        client = self.session.client()
        with self.session.errors(f"reading {self.config.kv_mount}/{path}"):
            try:
                response = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.config.kv_mount, raise_on_deleted_version=True
                )
            except hvac_module().exceptions.InvalidPath:
                self._cache.pop(group, None)
                return None
        data = response.get("data") or {}
        metadata = data.get("metadata") or {}
        entry = KvEntry(
            dict(data.get("data") or {}),
            str(metadata.get("version", "")),
            _parse_time(metadata.get("created_time")),
            now,
        )
        self._cache[group] = entry
        return entry


def _parse_time(text: object) -> float | None:
    """Epoch seconds of a Vault timestamp ("2024-05-01T10:00:00.123456789Z"), None if unparsable."""
    if not isinstance(text, str):
        return None
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        return None

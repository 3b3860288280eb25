"""The process's live secret store, once the secrets feature installed it.

Application code asks for a live value by name (`pilothouse.secrets.live("db.url")`) and the
core's resolver reuses values already loaded, so a leased secret is read once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.errors import SecretError

if TYPE_CHECKING:
    from pilothouse.secrets.live import LiveSecret, SecretStore

_current: SecretStore | None = None


def activate(store: SecretStore | None) -> None:
    """Make `store` the process's store (None: forget it, e.g. after shutdown)."""
    global _current
    _current = store


def current() -> SecretStore | None:
    return _current


def live(name: str) -> LiveSecret:
    """The live secret `name` ("db.url"): `.value`, `.subscribe(callback)` for rotations."""
    if _current is None:
        raise SecretError(
            f"secret '{name}': no live secrets in this process (run under `pilothouse serve` or attach())"
        )
    return _current.get(name)

"""What every secret source implements, and what a lookup returns.

A provider answers one question: "do you have secret X?" — `Found`, `None` (not here), or a
`SecretError` when it should have it but cannot read it (permissions, server down). It never
puts a value into an error or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pilothouse.config.secret_ref import SecretRef


@dataclass(frozen=True, slots=True)
class Found:
    """A value and where it came from. `updated_at` is when the source last changed it (epoch
    seconds) if the source knows; `version` tells rotations apart where the source has one."""

    value: str
    location: str
    updated_at: float | None = None
    version: str | None = None


class Provider(Protocol):
    """One secret source (kubernetes mount, env, file, vault)."""

    name: str

    def where(self, ref: SecretRef) -> str:
        """Where this source looks for `ref`, for "not found" messages (no value)."""
        ...

    def lookup(self, ref: SecretRef) -> Found | None:
        """The secret, None if this source does not have it; SecretError if it cannot tell."""
        ...

    def close(self) -> None:
        """Release what the provider holds (leases, sessions); called at shutdown."""
        ...

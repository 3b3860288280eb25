"""What a check run produces, and how a check reports failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]


class CheckFailed(Exception):
    """Raised by a probe with a short, secret-free reason."""


Probe = Callable[[], Awaitable[None]]
"""The one signature every check has: an awaitable that returns on success, raises on failure."""


@dataclass(frozen=True, slots=True)
class Check:
    """A configured check: a probe plus what readiness needs to know about it."""

    name: str
    kind: str
    critical: bool
    timeout: float
    probe: Probe


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one check, as readiness reports it (never a secret in `error`)."""

    name: str
    ok: bool
    critical: bool
    duration_ms: float
    error: str | None = None

    @property
    def status(self) -> Status:
        if self.ok:
            return "pass"
        return "fail" if self.critical else "warn"

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "critical": self.critical,
            "duration_ms": round(self.duration_ms, 2),
        }
        if self.error:
            body["error"] = self.error
        return body

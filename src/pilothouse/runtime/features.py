"""The extension point optional features plug into (telemetry, jobs, secrets rotation...).

A feature is a module with `install(runtime: Runtime) -> None` (the `Feature` protocol): it reads
its own config section and registers hooks, routes, checks and middleware. The list of features a
process installs is `pilothouse.features` (above the features; the runtime imports none of them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime


class Feature(Protocol):
    """What `pilothouse.features` installs: a feature module (mypy checks each against this)."""

    def install(self, runtime: Runtime) -> None: ...

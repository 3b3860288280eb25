"""`install(runtime)`: the protection feature (listed in `pilothouse.runtime.features`).

Registers the protection middleware inside the in-flight layer (see `middleware`), so it runs
inside telemetry: its answers carry the request id and trace id, and are counted and logged
like any response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.protection.middleware import ProtectionMiddleware

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    config = runtime.config
    protection = config.protection
    if not (
        protection.errors.enabled
        or protection.headers.enabled
        or protection.limits.enabled
        or protection.trusted_proxies
    ):
        return
    metrics = runtime.metrics if config.telemetry.metrics else None
    runtime.add_middleware(lambda app: ProtectionMiddleware(app, protection, metrics), inner=True)

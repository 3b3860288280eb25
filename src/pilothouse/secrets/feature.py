"""The secrets feature: live values, rotation watcher, reload metrics and a readiness check.

Installed before any port is bound, so a required secret missing from every source (or a Vault
that refuses the login) stops `pilothouse serve` with one line and nothing half-started.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pilothouse.catalog import secrets as secret_metrics
from pilothouse.runtime.checks import Check, CheckFailed
from pilothouse.runtime.checks.result import Probe
from pilothouse.secrets import registry
from pilothouse.secrets.live import SecretStore
from pilothouse.secrets.resolver import SecretResolver
from pilothouse.secrets.watch import Watcher

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime

CHECK_NAME = "secrets"


def install(runtime: Runtime) -> None:
    config = runtime.config
    runtime.resolve_secret = SecretResolver(config).get  # configured checks with secret URLs
    refs = config.secret_refs()
    if not refs:
        return
    failures = runtime.metrics.counter(secret_metrics.SECRET_RELOAD_FAILURES)
    last_load = runtime.metrics.gauge(secret_metrics.SECRET_LAST_LOAD)
    store = SecretStore(
        SecretResolver(config),
        refs,
        on_loaded=lambda name, when: last_load.labels(name).set(when),
        on_failure=lambda name: failures.labels(name).inc(),
    )
    for name in store.secrets:
        failures.labels(name)  # export 0 from the start so increase() works on the first failure
    try:
        store.load_all()
    except BaseException:
        store.close()
        raise
    registry.activate(store)
    watcher = Watcher(store, config.secrets.watch_interval)
    runtime.add_check(Check(CHECK_NAME, CHECK_NAME, critical=False, timeout=1.0, probe=reload_probe(store)))
    runtime.on_start(watcher.start)
    runtime.on_drain(watcher.stop)

    async def close() -> None:
        await watcher.stop()
        registry.activate(None)
        await asyncio.to_thread(store.close)  # revokes Vault leases: credentials end with the process

    runtime.on_flush(close)


def reload_probe(store: SecretStore) -> Probe:
    """Warn (non-critical) while a secret cannot be reloaded and an older value is in use."""

    async def probe() -> None:
        failing = store.failures
        if failing:
            names = ", ".join(sorted(failing))
            raise CheckFailed(f"reload failed for {names}; serving with the previous value")

    return probe

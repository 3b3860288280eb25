"""Every metric Pilothouse emits, declared once.

The runtime registers collectors from these specs; generators (dashboards, alerts) build PromQL
from them. Nothing else spells a metric name. Each concern adds a module with a `SPECS` tuple
and is imported and listed in `_MODULES` here.
"""

from __future__ import annotations

from typing import Protocol

from pilothouse.catalog import (
    app,
    backup,
    db_client,
    http_client,
    http_server,
    jobs,
    lifecycle,
    maintenance,
    process,
    protection,
    rpc,
    secrets,
    telemetry,
)
from pilothouse.catalog.spec import MetricSpec, MetricType


class SpecModule(Protocol):
    """A catalog module: its metrics in `SPECS`."""

    @property
    def SPECS(self) -> tuple[MetricSpec, ...]: ...


_MODULES: tuple[SpecModule, ...] = (
    app,
    backup,
    db_client,
    http_client,
    http_server,
    jobs,
    lifecycle,
    maintenance,
    process,
    protection,
    rpc,
    secrets,
    telemetry,
)


def all_specs() -> tuple[MetricSpec, ...]:
    """Every declared metric, in a stable order; names are unique."""
    specs: list[MetricSpec] = []
    for module in _MODULES:
        specs.extend(module.SPECS)
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise RuntimeError(f"duplicate metric names in the catalog: {names}")
    return tuple(specs)


def spec(name: str) -> MetricSpec:
    """Look a metric up by family name."""
    for candidate in all_specs():
        if candidate.name == name:
            return candidate
    raise KeyError(name)


__all__ = ["MetricSpec", "MetricType", "all_specs", "spec"]

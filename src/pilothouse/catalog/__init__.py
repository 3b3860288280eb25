"""Every metric Pilothouse emits, declared once.

The runtime registers collectors from these specs; generators (dashboards, alerts) build PromQL
from them. Nothing else spells a metric name. Each concern adds a module with a `SPECS` tuple
and is listed in `_MODULES`.
"""

from __future__ import annotations

import importlib

from pilothouse.catalog.spec import MetricSpec, MetricType

_MODULES = ("app", "backup", "http", "jobs", "lifecycle", "process", "protection", "secrets", "telemetry")


def all_specs() -> tuple[MetricSpec, ...]:
    """Every declared metric, in a stable order; names are unique."""
    specs: list[MetricSpec] = []
    for name in _MODULES:
        module = importlib.import_module(f"pilothouse.catalog.{name}")
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

"""Maintenance metrics, set by every job worker from the job store (the checks may have run in a
CronJob, a timer or another replica)."""

from __future__ import annotations

from pilothouse.catalog import maintenance as maintenance_metrics
from pilothouse.jobs.registry import Registry
from pilothouse.jobs.store import JobStore
from pilothouse.maintenance.certificates import CERTIFICATES
from pilothouse.metrics import Metrics


def publish(store: JobStore, registry: Registry, metrics: Metrics) -> None:
    if CERTIFICATES not in registry:
        return
    outcomes = store.latest_step_outcomes(CERTIFICATES)
    gauge = metrics.gauge(maintenance_metrics.CERTIFICATE_EXPIRING)
    for step in registry.get(CERTIFICATES).steps:
        if step.name.startswith("cert-"):
            outcome = outcomes.get(step.name)
            gauge.labels(step.name.removeprefix("cert-")).set(0 if outcome in (None, "ok") else 1)

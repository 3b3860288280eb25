"""Maintenance metrics, set by every job worker from the job store (the checks may have run in a
CronJob, a timer or another replica)."""

from __future__ import annotations

from pilothouse.catalog import maintenance as maintenance_metrics
from pilothouse.jobs.registry import Registry
from pilothouse.jobs.store import JobStore
from pilothouse.maintenance.certificates import CERTIFICATES
from pilothouse.maintenance.updates import UPDATES
from pilothouse.metrics import Metrics


def publish(store: JobStore, registry: Registry, metrics: Metrics) -> None:
    if UPDATES in registry:
        outcomes = store.latest_step_outcomes(UPDATES)
        pending = metrics.gauge(maintenance_metrics.UPDATES_PENDING)
        for step in registry.get(UPDATES).steps:
            kind, _, security = step.name.partition("-")
            # "warning": pending; ok, never run or could not check (a failed job, alerted apart): 0
            pending.labels(kind, "security" if security else "all").set(
                1 if outcomes.get(step.name) == "warning" else 0
            )
    if CERTIFICATES not in registry:
        return
    outcomes = store.latest_step_outcomes(CERTIFICATES)
    gauge = metrics.gauge(maintenance_metrics.CERTIFICATE_EXPIRING)
    for step in registry.get(CERTIFICATES).steps:
        if step.name.startswith("cert-"):
            outcome = outcomes.get(step.name)
            gauge.labels(step.name.removeprefix("cert-")).set(0 if outcome in (None, "ok") else 1)

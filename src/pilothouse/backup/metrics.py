"""Backup metrics, set by every job worker from the job store: the runs may have happened in any
process (`pilothouse backup run`, a CronJob, a timer, another replica), the store saw them all."""

from __future__ import annotations

from pilothouse.backup.job import BACKUP, RESTORE_TEST
from pilothouse.catalog import backup as backup_metrics
from pilothouse.jobs.registry import Registry
from pilothouse.jobs.store import JobStore
from pilothouse.metrics import Metrics

GOOD = ("ok", "warning")


def publish(store: JobStore, registry: Registry, metrics: Metrics) -> None:
    if BACKUP not in registry:
        return
    targets = [
        s.name.removeprefix("target-") for s in registry.get(BACKUP).steps if s.name.startswith("target-")
    ]
    done = store.step_successes(BACKUP, "manifest")
    last_success = metrics.gauge(backup_metrics.BACKUP_LAST_SUCCESS)
    for target in targets:
        last_success.labels(target).set(done.get(f"target-{target}", 0.0))
    last = store.last_finished(RESTORE_TEST)
    metrics.gauge(backup_metrics.RESTORE_TEST_FAILING).set(1 if last and last[0] not in GOOD else 0)
    passed = store.step_successes(RESTORE_TEST, "restore-test").get("restore-test", 0.0)
    metrics.gauge(backup_metrics.RESTORE_TEST_LAST_SUCCESS).set(passed)

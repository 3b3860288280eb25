"""Where a run's events go: step records into the store, counts into the metrics catalog."""

from __future__ import annotations

from pilothouse.catalog import jobs as job_metrics
from pilothouse.jobs.definition import Step
from pilothouse.jobs.runner import StepResult
from pilothouse.jobs.store import JobRecord, JobStore
from pilothouse.metrics import Metrics
from pilothouse.runtime import threads

NOT_RUN = ("skipped", "cancelled")


class Recorder:
    """The `Observer` of one run: writes each step to the store and counts it."""

    def __init__(self, store: JobStore, metrics: Metrics, record: JobRecord) -> None:
        self.store = store
        self.metrics = metrics
        self.record = record

    async def step_started(self, seq: int, step: Step) -> None:
        await threads.call(self.store.step_started, self.record.id, self.record.attempts, seq, step.name)

    async def step_finished(self, result: StepResult) -> None:
        record = self.record
        await threads.call(
            self.store.step_finished,
            record.id,
            record.attempts,
            result.seq,
            result.name,
            result.outcome,
            result.rc,
            result.tries,
            result.error,
        )
        self.metrics.counter(job_metrics.JOB_STEPS).labels(record.name, result.name, result.outcome).inc()
        if result.tries:
            self.metrics.histogram(job_metrics.JOB_STEP_DURATION).labels(record.name, result.name).observe(
                result.duration
            )

    def attempt_failed(self, step: Step, outcome: str) -> None:
        self.metrics.counter(job_metrics.JOB_ERRORS).labels(self.record.name).inc()


def count_run(metrics: Metrics, job: str, outcome: str, max_rc: int) -> None:
    """One finished run (also runs recorded as lost by stale-heartbeat recovery)."""
    metrics.counter(job_metrics.JOB_RUNS).labels(job, outcome).inc()
    metrics.gauge(job_metrics.JOB_RETURN_CODE).labels(job).set(max_rc)
    metrics.counter(job_metrics.JOB_ERRORS).labels(job)  # a job that never failed shows 0, not nothing

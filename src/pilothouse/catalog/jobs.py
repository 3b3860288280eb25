"""Metrics of batch and background jobs: runs, steps, return codes, queue and drain state."""

from pilothouse.catalog.spec import MetricSpec

JOB_RUNS = MetricSpec(
    name="pilothouse_job_runs",
    type="counter",
    help="Finished job runs by outcome (ok, warning, failed, cancelled, lost).",
    labels=("job", "outcome"),
)
JOB_STEPS = MetricSpec(
    name="pilothouse_job_steps",
    type="counter",
    help="Finished job steps by outcome (ok, warning, error, abend, timeout, skipped, cancelled).",
    labels=("job", "step", "outcome"),
)
JOB_STEP_DURATION = MetricSpec(
    name="pilothouse_job_step_duration_seconds",
    type="histogram",
    help="Duration of job steps that ran (retries included), skipped steps excluded.",
    labels=("job", "step"),
    unit="seconds",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
JOB_RETURN_CODE = MetricSpec(
    name="pilothouse_job_return_code",
    type="gauge",
    help="Return code (highest step return code) of the last finished run of a job.",
    labels=("job",),
)
JOB_ERRORS = MetricSpec(
    name="pilothouse_job_errors",
    type="counter",
    help="Step attempts that failed: RC 8 or more, abend or timeout (retried attempts included).",
    labels=("job",),
)
JOB_QUEUE_DEPTH = MetricSpec(
    name="pilothouse_job_queue_depth",
    type="gauge",
    help="Jobs waiting in the store's queue, as last seen by this worker.",
)
JOB_RUNNING = MetricSpec(
    name="pilothouse_job_running",
    type="gauge",
    help="Jobs this worker is running now.",
)
JOB_DRAINING = MetricSpec(
    name="pilothouse_job_draining",
    type="gauge",
    help="1 while this worker takes no new jobs (store drain flag or local shutdown), else 0.",
)

SPECS: tuple[MetricSpec, ...] = (
    JOB_RUNS,
    JOB_STEPS,
    JOB_STEP_DURATION,
    JOB_RETURN_CODE,
    JOB_ERRORS,
    JOB_QUEUE_DEPTH,
    JOB_RUNNING,
    JOB_DRAINING,
)


def _schedule_gauge(name: str, help_text: str, unit: str = "seconds") -> MetricSpec:
    """A per-schedule gauge read from the job store (every replica exports the same value: max)."""
    return MetricSpec(
        name=name, type="gauge", help=help_text, labels=("schedule",), unit=unit, multiprocess_mode="max"
    )


SCHEDULE_LAST_FIRE = _schedule_gauge(
    "pilothouse_job_schedule_last_fire_timestamp_seconds",
    "The last slot (cron time) of a schedule that was handled (fired, forbidden or missed).",
)
SCHEDULE_NEXT_FIRE = _schedule_gauge(
    "pilothouse_job_schedule_next_fire_timestamp_seconds", "When a schedule fires next."
)
SCHEDULE_LAST_SUCCESS = _schedule_gauge(
    "pilothouse_job_schedule_last_success_timestamp_seconds",
    "When a run of a schedule last finished ok or with a warning (its creation time before).",
)
SCHEDULE_SUCCESS_WINDOW = _schedule_gauge(
    "pilothouse_job_schedule_success_window_seconds",
    "How old a schedule's last success may get: its longest period plus misfire_grace.",
)
SCHEDULE_MISSED = _schedule_gauge(
    "pilothouse_job_schedule_missed_runs",
    "Slots of a schedule that did not run (too late, coalesced, or the previous run still "
    "active), since the schedule was created (kept in the job store).",
    unit="",
)
SCHEDULE_SPECS = (
    SCHEDULE_LAST_FIRE,
    SCHEDULE_NEXT_FIRE,
    SCHEDULE_LAST_SUCCESS,
    SCHEDULE_SUCCESS_WINDOW,
    SCHEDULE_MISSED,
)
SPECS += SCHEDULE_SPECS

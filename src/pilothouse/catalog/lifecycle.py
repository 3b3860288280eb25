"""Metrics of the process lifecycle and readiness checks."""

from pilothouse.catalog.spec import MetricSpec

BUILD_INFO = MetricSpec(
    name="pilothouse_build",
    type="info",
    help="Build information of the service; the value is always 1.",
    labels=("service", "version", "python_version"),
)
LIFECYCLE_STATE = MetricSpec(
    name="pilothouse_lifecycle_state",
    type="gauge",
    help="1 for the lifecycle state the process is in, 0 for the others.",
    labels=("state",),
)
READINESS_CHECK_STATUS = MetricSpec(
    name="pilothouse_readiness_check_status",
    type="gauge",
    help="Result of the last run of a readiness check: 1 pass, 0 fail.",
    labels=("check", "critical"),
)
READINESS_CHECK_DURATION = MetricSpec(
    name="pilothouse_readiness_check_duration_seconds",
    type="histogram",
    help="Duration of readiness check runs.",
    labels=("check",),
    unit="seconds",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READINESS_CHECK_RUNS = MetricSpec(
    name="pilothouse_readiness_check_runs",
    type="counter",
    help="Readiness check runs by outcome (cached answers are not runs).",
    labels=("check", "outcome"),
)

SPECS = (BUILD_INFO, LIFECYCLE_STATE, READINESS_CHECK_STATUS, READINESS_CHECK_DURATION, READINESS_CHECK_RUNS)

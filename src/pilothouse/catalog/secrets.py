"""Metrics of secret loading and rotation (labels carry secret names, never values)."""

from pilothouse.catalog.spec import MetricSpec

SECRET_RELOAD_FAILURES = MetricSpec(
    name="pilothouse_secret_reload_failures",
    type="counter",
    help="Reloads of a secret that failed (unreadable or empty); the previous value stays in use.",
    labels=("secret",),
)
SECRET_LAST_LOAD = MetricSpec(
    name="pilothouse_secret_last_load_timestamp_seconds",
    type="gauge",
    help="Unix time of the last successful load of a secret from its source.",
    labels=("secret",),
    unit="seconds",
)

SPECS = (SECRET_RELOAD_FAILURES, SECRET_LAST_LOAD)

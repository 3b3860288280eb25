"""Metrics of the built-in maintenance jobs, published by every job worker from the job store."""

from pilothouse.catalog.spec import MetricSpec

CERTIFICATE_EXPIRING = MetricSpec(
    name="pilothouse_certificate_expiring",
    type="gauge",
    help="1 when the newest pilothouse.certificates check of a certificate did not end ok "
    "(expiring within [maintenance].certificate_warning, expired or unreadable), else 0.",
    labels=("certificate",),
    multiprocess_mode="max",
)

UPDATES_PENDING = MetricSpec(
    name="pilothouse_updates_pending",
    type="gauge",
    help="1 when the newest pilothouse.updates check of a kind (python, apt, image) found updates "
    "pending (scope all) or security updates pending (scope security), else 0 (also when it could "
    "not check).",
    labels=("kind", "scope"),
    multiprocess_mode="max",
)

SPECS = (CERTIFICATE_EXPIRING, UPDATES_PENDING)

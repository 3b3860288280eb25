"""Metrics about Pilothouse's own telemetry pipeline."""

from pilothouse.catalog.spec import MetricSpec

SPAN_DROP_REASONS = ("queue_full", "export_failed")
"""`reason` values: the export queue was full (the receiver is slow, stuck or down), or the
exporter gave up on a batch (retries ran out, a non-retryable answer, the shutdown deadline)."""

SPANS_DROPPED = MetricSpec(
    name="pilothouse_spans_dropped",
    type="counter",
    help="Finished sampled spans never exported, by reason (queue_full, export_failed).",
    labels=("reason",),
    unit="spans",
)

SPECS = (SPANS_DROPPED,)

"""One trace per job run, one span per step, linked to the trace that submitted the job.

A job runs long after (and far from) the request that queued it, so its spans start a new trace
with a *link* to the submitter's span instead of becoming part of the request's trace. Uses the
global tracer provider (the telemetry feature configures it); without OpenTelemetry installed
nothing is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the `traces` extra is not installed
    trace = None  # type: ignore[assignment]

TRACER_NAME = "pilothouse.jobs"


def current_traceparent(headers: dict[str, str] | None = None) -> str | None:
    """The W3C traceparent of the active span, else of `headers` (an incoming request)."""
    if trace is not None:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        if "traceparent" in carrier:
            return carrier["traceparent"]
    return (headers or {}).get("traceparent")


@contextlib.contextmanager
def job_span(name: str, job_id: int, attempt: int, traceparent: str | None) -> Iterator[Any]:
    """The root span of one job run; yields the span (None without OpenTelemetry)."""
    if trace is None:
        yield None
        return
    links = []
    if traceparent:
        parent = trace.get_current_span(
            TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        ).get_span_context()
        if parent.is_valid:
            links.append(trace.Link(parent, {"pilothouse.link": "submitted_by"}))
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"job {name}",
        context=otel_context.Context(),
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={"job.name": name, "job.id": job_id, "job.attempt": attempt},
    ) as span:
        yield span


@contextlib.contextmanager
def step_span(job: str, step: str) -> Iterator[Any]:
    """A child span of the current job span for one step."""
    if trace is None:
        yield None
        return
    with trace.get_tracer(TRACER_NAME).start_as_current_span(
        f"step {step}", attributes={"job.name": job, "job.step": step}
    ) as span:
        yield span


def finish_span(span: Any, *, rc: int, outcome: str, error: str | None = None) -> None:
    """Record a job's or step's return code and outcome; errors mark the span failed."""
    if span is None or trace is None:
        return
    span.set_attribute("job.return_code", rc)
    span.set_attribute("job.outcome", outcome)
    if outcome in ("error", "abend", "timeout", "failed", "lost"):
        span.set_status(trace.Status(trace.StatusCode.ERROR, error or outcome))

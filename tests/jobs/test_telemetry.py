"""Metrics after a known sequence of jobs equal what happened; one trace per run, a span per
step, linked to the submitting trace; log records carry the job id and step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilothouse.config.loader import config_from_dict
from pilothouse.jobs import Abend, Registry, StepContext
from pilothouse.jobs.store import JobStore, open_store
from pilothouse.jobs.submit import submit
from pilothouse.jobs.worker import Worker
from pilothouse.metrics import Metrics
from tests.jobs.conftest import wait_until

SUBMITTER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def registry() -> Registry:
    jobs = Registry()
    good = jobs.job("good")
    good.step("extract")(lambda ctx: 0)
    good.step("load")(lambda ctx: 4)
    good.step("notify", when_below=4)(lambda ctx: 0)
    bad = jobs.job("bad")

    @bad.step(idempotent=True, retries=1, backoff=0.0)
    def fetch(ctx: StepContext) -> None:
        ctx.log.info("fetching")
        raise Abend(12, "upstream gone")

    bad.step("never")(lambda ctx: 0)
    return jobs


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[JobStore, Registry, Worker, Metrics]]:
    config = config_from_dict(
        {"service": {"name": "t"}, "jobs": {"poll_interval": "20ms", "heartbeat_interval": "50ms"}},
        source=tmp_path / "pilothouse.toml",
    )
    assert config.jobs is not None
    store, jobs, metrics = open_store(config), registry(), Metrics()
    yield store, jobs, Worker(store, jobs, config.jobs, metrics, concurrency=1), metrics
    store.close()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter on the global provider (set here unless another suite did)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def run_all(
    store: JobStore,
    worker: Worker,
    names: list[str],
    traceparent: str | None = None,
    settled: Callable[[], bool] = lambda: True,
) -> list[int]:
    """Submit, run until every job finished and `settled` holds (e.g. a gauge caught up), stop."""
    ids = [submit(store, worker.registry, name, {}, traceparent) for name in names]
    await worker.start()
    try:
        await asyncio.to_thread(
            wait_until, lambda: store.counts()["finished"] == len(ids) and settled(), 15, "jobs to finish"
        )
    finally:
        await worker.stop()
    return ids


async def test_metrics_equal_what_happened(setup: tuple[JobStore, Registry, Worker, Metrics]) -> None:
    store, _, worker, metrics = setup
    value = metrics.registry.get_sample_value
    queue_empty = lambda: value("pilothouse_job_queue_depth") == 0  # noqa: E731 - a predicate
    await run_all(store, worker, ["good", "bad", "good"], settled=queue_empty)
    assert value("pilothouse_job_runs_total", {"job": "good", "outcome": "warning"}) == 2
    assert value("pilothouse_job_runs_total", {"job": "bad", "outcome": "failed"}) == 1
    assert value("pilothouse_job_runs_total", {"job": "good", "outcome": "ok"}) is None
    assert value("pilothouse_job_return_code", {"job": "good"}) == 4
    assert value("pilothouse_job_return_code", {"job": "bad"}) == 12
    assert value("pilothouse_job_errors_total", {"job": "bad"}) == 2  # both tries abended
    assert value("pilothouse_job_errors_total", {"job": "good"}) == 0  # a series from the first run
    steps = {
        (job, step, outcome): value(
            "pilothouse_job_steps_total", {"job": job, "step": step, "outcome": outcome}
        )
        for job, step, outcome in [
            ("good", "extract", "ok"),
            ("good", "load", "warning"),
            ("good", "notify", "skipped"),
            ("bad", "fetch", "abend"),
            ("bad", "never", "skipped"),
        ]
    }
    assert steps == {
        ("good", "extract", "ok"): 2,
        ("good", "load", "warning"): 2,
        ("good", "notify", "skipped"): 2,
        ("bad", "fetch", "abend"): 1,
        ("bad", "never", "skipped"): 1,
    }
    # durations only for steps that ran
    assert value("pilothouse_job_step_duration_seconds_count", {"job": "good", "step": "load"}) == 2
    assert value("pilothouse_job_step_duration_seconds_count", {"job": "good", "step": "notify"}) is None
    assert value("pilothouse_job_running") == 0
    assert value("pilothouse_job_queue_depth") == 0
    assert value("pilothouse_job_draining") == 0


async def test_draining_gauge_follows_the_store_flag(
    setup: tuple[JobStore, Registry, Worker, Metrics],
) -> None:
    store, _, worker, metrics = setup
    store.set_draining(True)
    await worker.start()
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: metrics.registry.get_sample_value("pilothouse_job_draining") == 1,
            15,
            "the draining gauge",
        )
        await asyncio.to_thread(
            wait_until, lambda: [w.accepting for w in store.workers()] == [False], 15, "the worker record"
        )
    finally:
        await worker.stop()
    assert store.workers() == []  # a clean stop unregisters


async def test_one_trace_per_run_linked_to_the_submitter(
    setup: tuple[JobStore, Registry, Worker, Metrics],
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, _, worker, _ = setup
    spans.clear()
    with caplog.at_level(logging.INFO, logger="pilothouse.jobs"):
        [good_id, bad_id] = await run_all(store, worker, ["good", "bad"], SUBMITTER)
    finished = spans.get_finished_spans()
    roots = {s.attributes["job.id"]: s for s in finished if s.name.startswith("job ")}  # type: ignore[index]
    assert set(roots) == {good_id, bad_id}
    good, bad = roots[good_id], roots[bad_id]
    assert good.parent is None and good.context.trace_id != bad.context.trace_id
    assert [format(link.context.trace_id, "032x") for link in good.links] == [SUBMITTER.split("-")[1]]
    children = [s for s in finished if s.parent is not None and s.parent.span_id == good.context.span_id]
    assert sorted(s.name for s in children) == ["step extract", "step load"]  # skipped steps have no span
    assert good.attributes["job.return_code"] == 4  # type: ignore[index]
    assert bad.status.status_code == trace.StatusCode.ERROR
    fetching = [r for r in caplog.records if r.getMessage() == "fetching"]
    assert len(fetching) == 2
    assert {(r.job_id, r.step, r.job) for r in fetching} == {(bad_id, "fetch", "bad")}  # type: ignore[attr-defined]

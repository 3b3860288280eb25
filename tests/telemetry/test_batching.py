"""What the request path queues instead of doing at once: span export batches and access lines."""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilothouse.config.model import Config
from pilothouse.redaction import register_secret
from pilothouse.telemetry import logs
from pilothouse.telemetry.access import AccessLog
from pilothouse.telemetry.batch import BatchExport, make_room_for_batch
from pilothouse.telemetry.context import current_request, request_context
from pilothouse.telemetry.server_span import ServerSpanStarter
from tests.helpers import write_config


def _spans(
    monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[ServerSpanStarter, BatchExport, InMemorySpanExporter]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    exporter = InMemorySpanExporter()
    processor = BatchExport(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0), processor, exporter  # type: ignore[arg-type]


def test_spans_wait_for_the_delay_or_a_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    spans, processor, exporter = _spans(monkeypatch, OTEL_BSP_SCHEDULE_DELAY="600000")
    for _ in range(3):
        spans.start("GET", {}, None, None, None).end()
    time.sleep(0.05)
    assert exporter.get_finished_spans() == ()
    assert processor.force_flush()
    assert len(exporter.get_finished_spans()) == 3
    processor.shutdown()


def test_a_full_batch_is_exported_without_a_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    spans, processor, exporter = _spans(
        monkeypatch, OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4"
    )
    for _ in range(4):
        spans.start("GET", {}, None, None, None).end()
    deadline = time.monotonic() + 5
    while len(exporter.get_finished_spans()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(exporter.get_finished_spans()) == 4
    processor.shutdown()


def test_spans_arriving_during_an_export_wait_for_a_full_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Woken by a full batch, the exporter sends full batches only: the spans that arrive while
    it posts are not chased with ever smaller exports (each paying a POST's fixed cost)."""
    spans, processor, exporter = _spans(
        monkeypatch, OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4"
    )
    sizes: list[int] = []
    export = exporter.export

    def slow_export(batch: Sequence[Any]) -> Any:
        sizes.append(len(batch))
        time.sleep(0.05)  # a receiver taking its time: more spans arrive meanwhile
        return export(batch)

    monkeypatch.setattr(exporter, "export", slow_export)
    for _ in range(4):  # a full batch: the export starts
        spans.start("GET", {}, None, None, None).end()
    deadline = time.monotonic() + 5
    while not sizes and time.monotonic() < deadline:
        time.sleep(0.001)
    for _ in range(2):  # arrive during that export: not a full batch
        spans.start("GET", {}, None, None, None).end()
    while len(exporter.get_finished_spans()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # room for a (wrong) export of the two
    assert sizes == [4]
    processor.shutdown()  # the rest goes at shutdown
    assert sizes == [4, 2]


def test_a_full_queue_drops_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spans, processor, exporter = _spans(
        monkeypatch, OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BSP_MAX_QUEUE_SIZE="2"
    )
    for _ in range(5):
        spans.start("GET", {}, None, None, None).end()
    processor.shutdown()  # exports what was queued
    assert len(exporter.get_finished_spans()) == 2
    assert "3 spans dropped" in caplog.text
    spans.start("GET", {}, None, None, None).end()  # after shutdown: ignored
    assert len(exporter.get_finished_spans()) == 2


def test_a_forked_child_exports_its_own_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """The export thread does not survive fork(); the child's first span starts a new one."""
    spans, processor, exporter = _spans(
        monkeypatch, OTEL_BSP_SCHEDULE_DELAY="10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1"
    )
    spans.start("GET", {}, None, None, None).end()  # the parent's thread is running now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        exporter.clear()
        spans.start("child", {}, None, None, None).end()
        deadline = time.monotonic() + 5
        while not exporter.get_finished_spans() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(write, ",".join(s.name for s in exporter.get_finished_spans()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "child"
    os.waitpid(pid, 0)
    processor.shutdown()


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """Automatic collections from here on, one entry each (any generation: CPython 3.14 reports
    them as generation 1); the collector's thresholds and state are restored afterwards."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.enable()
    gc.collect()  # the counts start at zero
    gc.callbacks.append(count)
    try:
        yield seen
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*saved)
        if not enabled:
            gc.disable()


@contextmanager
def _one_short_of_a_batch(monkeypatch: pytest.MonkeyPatch, collections: list[int]) -> Iterator[None]:
    """A processor's queue filled to one span short of a full batch (so nothing is exported),
    with `collections` counting from its first span on; the processor is shut down after."""
    spans, processor, _ = _spans(monkeypatch, OTEL_BSP_SCHEDULE_DELAY="600000")
    try:
        spans.start("GET", {}, None, None, None).end()  # starts the export thread
        gc.collect()
        collections.clear()
        for _ in range(processor.batch_size - 2):
            spans.start("GET", {}, None, None, None).end()
        yield
    finally:
        processor.shutdown()


def test_queued_spans_trigger_collections_at_700(
    monkeypatch: pytest.MonkeyPatch, collections: list[int]
) -> None:
    """What `make_room_for_batch` is for: CPython <= 3.12's 700 new objects between young
    collections is less than one batch of queued server spans."""
    gc.set_threshold(700, 10, 10)
    with _one_short_of_a_batch(monkeypatch, collections):
        assert len(collections) >= 1


def test_room_for_one_batch_means_no_collections(
    monkeypatch: pytest.MonkeyPatch, collections: list[int]
) -> None:
    gc.set_threshold(700, 10, 10)
    assert make_room_for_batch(512) == (700, 3024)
    assert gc.get_threshold()[0] == 3024
    with _one_short_of_a_batch(monkeypatch, collections):
        assert collections == []


def test_the_threshold_is_only_raised_capped_and_a_disabled_collector_left_alone(
    collections: list[int],
) -> None:
    gc.set_threshold(5000, 10, 10)
    assert make_room_for_batch(512) is None
    assert gc.get_threshold()[0] == 5000
    gc.set_threshold(0, 10, 10)  # threshold 0 turns automatic collection off
    assert make_room_for_batch(512) is None
    assert gc.get_threshold()[0] == 0
    gc.set_threshold(700, 10, 10)
    gc.disable()
    assert make_room_for_batch(512) is None
    assert gc.get_threshold()[0] == 700
    gc.enable()
    assert make_room_for_batch(100_000) == (700, 10_000)  # OTEL_BSP_MAX_EXPORT_BATCH_SIZE=100000
    assert gc.get_threshold()[0] == 10_000


@pytest.mark.parametrize(("setting", "expected"), [("", 3024), ("gc_room_for_spans = false", 700)])
def test_tracing_setup_makes_room_unless_told_not_to(tmp_path: Path, setting: str, expected: int) -> None:
    """In a fresh process, as `serve` sets tracing up (the tracer provider is global)."""
    config = write_config(tmp_path, f'[service]\nname = "gc"\n[telemetry]\ntraces = "console"\n{setting}\n')
    code = (
        "import gc, logging, sys; gc.set_threshold(700, 10, 10);"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='%(message)s');"
        "from pilothouse.config.loader import load_config; from pilothouse.telemetry import tracing;"
        f"tracing.setup_tracing(load_config({str(config)!r})); print(gc.get_threshold()[0])"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    out = run.stdout
    assert int(out.splitlines()[-1]) == expected
    logged = "gc: young-generation threshold 700 -> 3024, room for one span export batch of 512" in out
    assert logged == (setting == "")


@pytest.fixture
def handler() -> Iterator[io.StringIO]:
    """The JSON handler `configure_logging` installs, writing to a buffer; restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure_logging(Config.model_validate({"service": {"name": "svc"}}))
    installed = logs.installed_handler()
    assert installed is not None
    installed.setStream(stream)
    yield stream
    installed.close()
    root.handlers[:], root.level = saved


def _only_ours() -> None:
    """The fast path applies only when Pilothouse's handler is the only one: drop pytest's
    capture handlers (added after fixtures ran) for this test."""
    logging.getLogger().handlers[:] = [logs.installed_handler()]  # type: ignore[list-item]


def test_access_line_is_queued_in_order_and_same_as_a_record(handler: io.StringIO) -> None:
    _only_ours()
    access = AccessLog().write
    token = current_request.set(request_context("rid-1", 'tx "1"'))
    try:
        access("GET", '/a"b\\c\u00e9', "/a/{x}", 200, 0.0123, current_request.get(), ("ab" * 16, "cd" * 8))
        assert handler.getvalue() == ""  # queued, not written yet
        logging.getLogger("app").warning("after")  # another record writes the queue first
    finally:
        current_request.reset(token)
    first, second = (json.loads(line) for line in handler.getvalue().splitlines())
    assert first == {
        "timestamp": first["timestamp"],
        "level": "info",
        "logger": "pilothouse.access",
        "message": 'GET /a"b\\c\u00e9 200 12.3ms',
        "service": "svc",
        "request_id": "rid-1",
        "correlation_id": 'tx "1"',
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "http_route": "/a/{x}",
        "status": 200,
        "duration_ms": 12.3,
    }
    assert first["timestamp"].endswith("Z") and second["message"] == "after"


def test_access_lines_are_flushed_by_the_timer_and_redacted(handler: io.StringIO) -> None:
    _only_ours()
    register_secret("s3cr3t-value-42")
    AccessLog().write("GET", "/reset/s3cr3t-value-42", "/reset/{token}", 200, 0.001, None, None)
    deadline = time.monotonic() + 5
    while not handler.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    line = json.loads(handler.getvalue())
    assert "s3cr3t-value-42" not in handler.getvalue() and "***" in line["message"]
    assert "trace_id" not in line and "request_id" not in line


def test_closing_the_handler_ends_its_writer_thread() -> None:
    """The writer thread sleeps on a lock `close` releases: it ends, a writer started after
    the close ends at once (lines then wait for a flush), and a second close is harmless."""
    stream = io.StringIO()
    handler = logs._Handler(stream)
    handler.setFormatter(logs.JsonFormatter("svc"))
    handler.defer(lambda items: "".join(items), "first\n")
    writer = handler._flusher
    assert writer is not None and writer.is_alive()
    handler.close()
    writer.join(timeout=10)
    assert not writer.is_alive() and stream.getvalue() == "first\n"
    handler._forked()  # as in a forked child: the next line starts a writer again
    handler.defer(lambda items: "".join(items), "second\n")
    late = handler._flusher
    assert late is not None
    late.join(timeout=10)
    assert not late.is_alive()
    handler.close()
    assert stream.getvalue() == "first\nsecond\n"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_flush_writes_queued_lines_and_another_handler_gets_records(handler: io.StringIO) -> None:
    _only_ours()
    AccessLog().write("POST", "/x", "/x", 201, 0.002, None, None)
    logs.flush_logs()  # the lifecycle's flush step
    assert json.loads(handler.getvalue())["status"] == 201
    second = _Collect()
    logging.getLogger().addHandler(second)  # e.g. an error tracker's handler: not bypassed
    AccessLog().write("GET", "/y", "/y", 404, 0.002, None, None)
    (record,) = second.records
    assert record.status == 404 and record.http_route == "/y"  # type: ignore[attr-defined]
    assert json.loads(handler.getvalue().splitlines()[1])["status"] == 404


def test_a_line_that_fails_to_render_does_not_stop_the_others(
    handler: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays quiet
    installed = logs.installed_handler()
    assert installed is not None

    def broken() -> str:
        raise ValueError("cannot render")

    def lines(items: Sequence[str]) -> str:
        if "broken" in items:
            raise ValueError("cannot render")
        return "".join(items)

    installed.defer(lambda items: broken(), None)
    installed.defer(lines, "second\n")
    installed.defer(lines, "broken")  # the run it is in is rendered again item by item
    installed.defer(lines, "third\n")
    logs.flush_logs()
    assert handler.getvalue() == "second\nthird\n"


@pytest.mark.parametrize("switch", ["logger level", "root level", "logging.disable", "disabled"])
def test_a_level_changed_after_lines_were_written_turns_the_access_line_off(
    handler: io.StringIO, switch: str
) -> None:
    """The access line reads the logger's own record of `isEnabledFor` answers; logging empties
    it in place on any level change, and `disabled` is read as well: none of these is missed."""
    _only_ours()
    access_logger = logging.getLogger(logs.ACCESS_LOGGER)
    write = AccessLog().write
    write("GET", "/on", "/on", 200, 0.001, None, None)  # the answer for INFO is now recorded
    try:
        if switch == "logger level":
            access_logger.setLevel(logging.WARNING)
        elif switch == "root level":
            logging.getLogger().setLevel(logging.WARNING)
        elif switch == "logging.disable":
            logging.disable(logging.INFO)
        else:
            access_logger.disabled = True
        write("GET", "/off", "/off", 200, 0.001, None, None)
    finally:
        access_logger.setLevel(logging.NOTSET)
        access_logger.disabled = False
        logging.disable(logging.NOTSET)
    logs.flush_logs()
    assert [json.loads(line)["message"] for line in handler.getvalue().splitlines()] == ["GET /on 200 1.0ms"]


def test_a_handler_on_the_pilothouse_logger_gets_the_access_line_and_propagate_is_honoured(
    handler: io.StringIO,
) -> None:
    """Lines go to every handler logging would call on their way up: one on `pilothouse` (the
    access logger's parent) gets the record; a `propagate = False` access logger with no handler
    of its own writes nowhere, as logging would (its last resort takes warnings only)."""
    _only_ours()
    parent = logging.getLogger("pilothouse")
    access_logger = logging.getLogger(logs.ACCESS_LOGGER)
    assert access_logger.parent is parent
    collect = _Collect()
    parent.addHandler(collect)
    try:
        AccessLog().write("GET", "/up", "/up", 200, 0.001, None, None)
    finally:
        parent.removeHandler(collect)
    assert [record.getMessage() for record in collect.records] == ["GET /up 200 1.0ms"]
    access_logger.propagate = False
    try:
        AccessLog().write("GET", "/nowhere", "/nowhere", 200, 0.001, None, None)
    finally:
        access_logger.propagate = True
    logs.flush_logs()
    assert [json.loads(line)["message"] for line in handler.getvalue().splitlines()] == ["GET /up 200 1.0ms"]

"""Batch span export with less work per span than the SDK's `BatchSpanProcessor`.

The SDK's processor pays per span for a shutdown check, an `os.getpid()` fork check, a deque
bound and a threading `Event` test; measured on the request path that is several microseconds
of a ~30 µs budget. Here a finished span is one length check and one deque append; forks are
handled once by `os.register_at_fork` instead of per span, and the export thread starts with
the first span (so a process forked before that needs nothing at all).

Same settings as the SDK (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`,
`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`): spans are exported in batches when a batch is full or the
delay passed, and everything queued on `force_flush` (the lifecycle's flush step) and
`shutdown`. When the queue is full new spans are dropped (never waiting on the export: a receiver
that hangs or refuses only fills the queue) and counted by `on_drop` (the
`pilothouse_spans_dropped` counter, reason `queue_full`) and in a warning; a batch the exporter
gives up on is counted with reason `export_failed`.

The flush and shutdown are bounded: `force_flush(timeout_millis)` and `shutdown()` (within
`flush_timeout`) stop waiting when their deadline passes, and pass it to an exporter that takes
one (`export_until`, the OTLP exporter's), so a stuck receiver cannot hold up the process's exit.

Queued spans are alive until their batch is exported, which the interpreter's cyclic garbage
collector cannot know: `make_room_for_batch` keeps one batch from triggering collections.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pilothouse.telemetry._otel_compat import SPAN_CONTEXT_IS_TUPLE, suppress_instrumentation, unsuppress
from pilothouse.telemetry.server_span import ServerSpan

log = logging.getLogger("pilothouse.telemetry")
_SAMPLED = 1  # the sampled bit of the trace flags
# The request path's spans, whose context's flags are read as the tuple item they are: `span.context`
# and `.trace_flags` are two Python-level property calls per span.
_FLAGS_AT_3 = ServerSpan if SPAN_CONTEXT_IS_TUPLE else None

# The young-generation budget left for the app's own objects: CPython 3.13's default threshold.
_APP_YOUNG_OBJECTS = 2000
# Objects the collector tracks per queued server span: the `ServerSpan` and its `SpanContext`.
_TRACKED_PER_SPAN = 2
# The most it is raised to: a huge OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not all but turn off the
# collection of the app's cyclic garbage.
_MAX_YOUNG_THRESHOLD = 10_000


def _setting(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value > 0 else default


class BatchExport(SpanProcessor):
    """Queues sampled finished spans; a daemon thread exports them in batches."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        flush_timeout: float = 30.0,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self._exporter = exporter
        self._export_until: Callable[[list[ReadableSpan], float | None], SpanExportResult] | None = getattr(
            exporter, "export_until", None
        )
        self._flush_timeout = flush_timeout
        self._gave_up = False  # the last flush ran out of time (a receiver hangs or refuses)
        self._on_drop = on_drop
        self._delay = _setting("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._max_queue = _setting("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._closed = False
        self._reset()
        _processors.add(self)

    def _reset(self) -> None:
        """Fresh queue, lock and thread state (at start, and in a forked child)."""
        self._queue: deque[ReadableSpan] = deque()
        self._dropped = 0
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def batch_size(self) -> int:
        """Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`): a full batch wakes the exporter."""
        return self._batch

    def on_end(self, span: ReadableSpan) -> None:
        flags = span._context[3] if type(span) is _FLAGS_AT_3 else span.context.trace_flags  # type: ignore[index]
        if not flags & _SAMPLED or self._closed:
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._dropped += 1
            if self._on_drop is not None:
                self._on_drop("queue_full", 1)
            return
        queue.append(span)
        if self._thread is None:
            self._start()
        elif len(queue) == self._batch:
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pilothouse-spans", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            # Woken by a full batch: export full batches only. Draining everything here would,
            # under load, chase the spans arriving during each export with ever smaller POSTs
            # (measured: 143 POSTs for 2,348 spans), each paying a request's fixed cost; what
            # is left waits for the next full batch or the delay.
            full = self._wake.wait(self._delay)
            self._wake.clear()
            self._export_queued(full_only=full and not self._closed)

    def _export_queued(self, deadline: float | None = None, full_only: bool = False) -> bool:
        """Export everything queued (`full_only`: only full batches), in batches; with a
        (monotonic) `deadline`, stop waiting for another export or the receiver when it
        passes. Whether the queue was emptied."""
        timeout = -1 if deadline is None else max(0.0, deadline - monotonic())
        if not self._export_lock.acquire(timeout=timeout):
            return False
        try:
            queue = self._queue
            least = self._batch if full_only else 1
            while len(queue) >= least:
                if deadline is not None and monotonic() >= deadline:
                    return False
                batch = [queue.popleft() for _ in range(min(self._batch, len(queue)))]
                self._export(batch, deadline)
            return True
        finally:
            if self._dropped:
                log.warning("span queue full: %d spans dropped", self._dropped)
                self._dropped = 0
            self._export_lock.release()

    def _export(self, batch: list[ReadableSpan], deadline: float | None) -> None:
        token = suppress_instrumentation()
        try:
            if self._export_until is not None:
                result = self._export_until(batch, deadline)
            else:
                result = self._exporter.export(batch)
        except Exception:
            log.exception("span export failed; %d spans lost", len(batch))
            result = SpanExportResult.FAILURE
        finally:
            unsuppress(token)
        if result is not SpanExportResult.SUCCESS and self._on_drop is not None:
            self._on_drop("export_failed", len(batch))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = self._export_queued(monotonic() + timeout_millis / 1000)
        self._gave_up = not flushed  # the shutdown after it then waits no second time
        return flushed

    def shutdown(self) -> None:
        """Export what is queued within `flush_timeout`; what is left then is dropped."""
        if self._closed:
            return
        self._closed = True
        deadline = monotonic() + (0.0 if self._gave_up else self._flush_timeout)
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - monotonic()))
        if not self._export_queued(deadline) and self._on_drop is not None and self._queue:
            self._on_drop("export_failed", len(self._queue))
            self._queue.clear()
        self._exporter.shutdown()

    def _forked(self) -> None:
        self._reset()


def make_room_for_batch(batch_size: int) -> tuple[int, int] | None:
    """Raise the collector's young-generation threshold so one batch of queued spans does not by
    itself trigger collections: (old, new) threshold, or None when it is left as it is.

    Queued spans stay alive until exported, so the collections they trigger (CPython up to 3.12
    collects the young generation every 700 new tracked objects) free nothing and promote them
    towards full collections (measured in docs/performance.md). On 3.14's incremental collector
    the same threshold also paces the old-generation increments, which then run less often too.
    Only ever raised, at most to `_MAX_YOUNG_THRESHOLD`, and left alone when the collector is
    off (threshold 0 or `gc.disable()`).
    """
    young, *older = gc.get_threshold()
    wanted = min(_APP_YOUNG_OBJECTS + _TRACKED_PER_SPAN * batch_size, _MAX_YOUNG_THRESHOLD)
    if not gc.isenabled() or young == 0 or young >= wanted:
        return None
    gc.set_threshold(wanted, *older)
    return young, wanted


_processors: weakref.WeakSet[Any] = weakref.WeakSet()


def _after_fork() -> None:
    for processor in list(_processors):
        processor._forked()


os.register_at_fork(after_in_child=_after_fork)

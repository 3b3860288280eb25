"""Logs: the standard `logging` module (and uvicorn's loggers) as one JSON object per line.

Fields: timestamp, level, logger, message, service, request_id, trace_id, span_id (when known),
the correlation value, `extra=` fields, and `exception` with the traceback text. Every string is
passed through `pilothouse.redaction.redact`, so registered secrets never reach a log line.
`log_format = "text"` gives a one-line human format with the same request fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import groupby, repeat, starmap
from math import trunc
from operator import itemgetter
from typing import Any, TextIO

from pilothouse import redaction
from pilothouse.config.model import Config
from pilothouse.redaction import redact
from pilothouse.telemetry.context import current_request

ACCESS_LOGGER = "pilothouse.access"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
FLUSH_INTERVAL = 0.2  # seconds a buffered line (access log) may wait before it is written
BUFFER_LINES = 8192  # or this many lines (the writer thread normally comes first)

# Attributes every LogRecord has; anything else on a record came from `extra=`. Not an extra
# either: uvicorn's `color_message` (`extra={"color_message": ...}`, the message with ANSI colour
# codes for its own terminal formatter), a copy of the message with escape codes in it.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# ANSI escape sequences (CSI, e.g. colours, and two-byte escapes): a log line is data, not a
# terminal, so they are removed from every string a JSON line carries.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")

# The end of a timestamp, by millisecond. Index 1000 (as 999) only guards the index without a
# `min` call per line: `int((created - second) * 1000)` of a fraction below 1 stays below 1000.
_MILLIS_Z = (*(f".{ms:03d}Z" for ms in range(1000)), ".999Z")
SpanIds = Callable[[], tuple[str, str] | None]
Render = Callable[[Sequence[Any]], str]
"""A deferred line's renderer: queued items in, their lines out (see `_Handler.defer`)."""
_RENDER = itemgetter(0)
_ITEM = itemgetter(1)

_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(", ", ": ")).encode


def _redact(text: str) -> str:
    """`redact`, skipped when the text cannot hold anything it masks (no registered secrets,
    no `=` or `:` of `key=value` / `key: value` pairs, whose `:` URL credentials need as well):
    most lines, e.g. every access line. ANSI escape codes are dropped on the way (tested with
    one `in` for the common case)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if redaction._values or "=" in text or ":" in text:
        return redact(text)
    return text


def json_string(text: str) -> str:
    """`text` as a JSON string literal, as the encoder writes it; without the encoder in the
    common case (printable, no quote or backslash)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _encode(text)


def _no_span() -> tuple[str, str] | None:
    return None


def otel_span_ids() -> SpanIds:
    """A function giving (trace_id, span_id) of the active span, if OpenTelemetry is installed."""
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        return _no_span

    def span_ids() -> tuple[str, str] | None:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    return span_ids


class _RequestFields:
    """Collects the request-scoped fields of a record; shared by both formatters."""

    __slots__ = ("correlation_field", "span_ids")

    def __init__(self, correlation_field: str) -> None:
        self.correlation_field = correlation_field
        self.span_ids = otel_span_ids()

    def __call__(self, doc: dict[str, Any]) -> None:
        request = current_request.get()
        if request is not None:
            if request.request_id is not None:
                doc["request_id"] = request.request_id
            if request.correlation is not None:
                doc[self.correlation_field] = request.correlation
            if request.subject is not None:
                doc["subject"] = request.subject
        ids = self.span_ids()
        if ids is not None:
            doc["trace_id"], doc["span_id"] = ids


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets redacted."""

    def __init__(self, service: str, correlation_field: str = "correlation_id") -> None:
        super().__init__()
        self.service = service
        self.request_fields = _RequestFields(correlation_field)
        self._service_json = f', "service": {_encode(service)}'
        self._correlation_key = f", {_encode(correlation_field)}: "
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is reused within it."""
        second = trunc(created)
        text = self._second_text if second == self._second else self._timestamp_second(second)
        return text + _MILLIS_Z[trunc((created - second) * 1000)]  # (`trunc`: `int()` without a type call)

    def _timestamp_second(self, second: int) -> str:
        """The timestamp up to `second` (a new second: rendered and kept)."""
        self._second = second
        self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return self._second_text

    def line(
        self,
        created: float,
        logger: str,
        message: str,
        request_id: str | None,
        correlation: str | None,
        ids: tuple[str, str] | None,
        extra: str,
    ) -> str:
        """An INFO line as `format` would write it, built as one string: no LogRecord, no dict,
        no encoder for values that need no escaping. `extra` is `, "key": value...` (JSON)."""
        fields = ""
        if request_id is not None:
            fields = f', "request_id": {json_string(request_id)}'
        if correlation is not None:
            fields += f"{self._correlation_key}{json_string(correlation)}"
        if ids is not None:
            fields += f', "trace_id": "{ids[0]}", "span_id": "{ids[1]}"'
        return (
            f'{{"timestamp": "{self._timestamp(created)}", "level": "info", "logger": "{logger}", '
            f'"message": {json_string(_redact(message))}{self._service_json}{fields}{extra}}}\n'
        )

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _redact(record.getMessage()),
            "service": self.service,
        }
        self.request_fields(doc)
        fields = record.__dict__
        for key in fields.keys() - _RECORD_FIELDS:
            value = fields[key]
            doc[key] = _redact(value) if isinstance(value, str) else value
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = redact(record.exc_text)
        return _encode(doc)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value...` for a terminal; secrets redacted."""

    def __init__(self, correlation_field: str = "correlation_id") -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")
        self.request_fields = _RequestFields(correlation_field)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields: dict[str, Any] = {}
        self.request_fields(fields)
        fields.pop("span_id", None)
        for key in sorted(record.__dict__.keys() - _RECORD_FIELDS):
            fields[key] = record.__dict__[key]
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return redact(line)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler Pilothouse installs (configuring twice replaces it).

    Besides records it takes deferred lines (`defer`: the access log, one per request) into a
    queue rendered and written in one call every FLUSH_INTERVAL seconds or BUFFER_LINES lines,
    so a request pays a deque append instead of formatting, a write and a flush. A renderer
    takes a run of queued items at once (one call, its loop, for a batch of lines). Pending lines
    are written before any other record (the stream stays in order), on `flush()` (the lifecycle's flush step,
    `logging.shutdown` at exit) and on `close()`: a graceful shutdown loses none; a killed
    process loses at most the last FLUSH_INTERVAL.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: deque[tuple[Render, Any]] = deque()
        # The writer thread's sleep: held until `close`; `acquire(timeout=...)` is one C call a
        # wake-up (an Event's `wait` runs a Condition's Python code every FLUSH_INTERVAL).
        self._stop = threading.Lock()
        self._stop.acquire()
        self._closed = False
        self._flusher: threading.Thread | None = None
        _handlers.add(self)

    def defer(self, render: Render, item: Any) -> None:
        """Queue a line: `render` gets this `item` with the items queued beside it with the same
        `render` when the queue is written, and returns their lines (each ending in a newline),
        so the request that logged it pays only for this append."""
        pending = self._pending
        pending.append((render, item))
        if len(pending) >= BUFFER_LINES:
            self.write_pending()
        elif self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="pilothouse-logs", daemon=True)
            self._flusher.start()

    def write_pending(self) -> None:
        """Render the queued lines and write them in one call."""
        pending = self._pending
        if not pending:
            return
        with self.lock:  # type: ignore[union-attr]
            # The lines queued so far, taken one by one (a request may append meanwhile), in C.
            queued = list(starmap(pending.popleft, repeat((), len(pending))))
            if not queued:
                return
            lines = []
            for render, run in groupby(queued, _RENDER):
                items = list(map(_ITEM, run))
                try:
                    lines.append(render(items))
                except Exception:  # one line that cannot be rendered must not stop the others
                    for item in items:
                        try:
                            lines.append(render((item,)))
                        except Exception:
                            self.handleError(
                                logging.makeLogRecord({"msg": "unrenderable log line", "args": None})
                            )
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # stream closed or broken: nowhere left to write
                pass

    def _flush_loop(self) -> None:
        while not self._stop.acquire(timeout=FLUSH_INTERVAL):
            self.write_pending()
        self._stop.release()  # stays released: a flusher started after `close` ends at once

    def _forked(self) -> None:
        """In a forked child the flusher thread does not exist: start a new one when needed."""
        self._flusher = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self.write_pending()
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._closed:
                self._closed = True
                self._stop.release()
        self.write_pending()
        super().close()


_handlers: weakref.WeakSet[_Handler] = weakref.WeakSet()


def _after_fork() -> None:
    for handler in list(_handlers):
        handler._forked()


os.register_at_fork(after_in_child=_after_fork)
_installed: _Handler | None = None


def installed_handler() -> _Handler | None:
    """The handler `configure_logging` installed last, if any."""
    return _installed


def flush_logs() -> None:
    """Write every queued line now (the lifecycle's flush step)."""
    if _installed is not None:
        _installed.flush()


def configure_logging(config: Config) -> None:
    """Route the root logger and uvicorn's loggers through one Pilothouse handler.

    Idempotent: `serve` calls it before importing the app (so import errors are formatted too)
    and the telemetry feature again for `attach`. uvicorn's own access log is silenced because
    Pilothouse writes its own access line (switch: `[telemetry].access_log`).
    """
    telemetry = config.telemetry
    formatter: logging.Formatter = (
        JsonFormatter(config.service.name, telemetry.correlation_attribute)
        if telemetry.log_format == "json"
        else TextFormatter(telemetry.correlation_attribute)
    )
    global _installed
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, _Handler):
            old.close()
    root.addHandler(handler)
    _installed = handler
    root.setLevel(telemetry.log_level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    logging.getLogger(ACCESS_LOGGER).disabled = not telemetry.access_log

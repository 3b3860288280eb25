"""The access log: one `pilothouse.access` line per request (`http_route`, `status`,
`duration_ms`), sharing the request's request id, correlation value and trace id.

When the JSON handler `configure_logging` installed is the only place the line goes (the usual
case), the request only queues its fields on that handler, which renders the JSON lines (one
string each, no LogRecord) and writes them in batches (see `logs._Handler.defer`). Otherwise
(text format, extra handlers or filters, e.g. a test's log capture) it is an ordinary
`LogRecord` through `logging`, so nothing is bypassed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from math import trunc
from time import time

from pilothouse import redaction
from pilothouse.catalog.http_server import STANDARD_METHODS
from pilothouse.telemetry import logs as _logs
from pilothouse.telemetry.context import RequestContext
from pilothouse.telemetry.logs import _MILLIS_Z, ACCESS_LOGGER, JsonFormatter, json_string

_INFO = logging.INFO


class AccessLog:
    """Writes the access line of a finished request."""

    __slots__ = ("_levels", "_logger", "_root", "_routes")

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._root = logging.getLogger()
        self._routes: dict[str, str] = {}  # route template -> its JSON; bounded like the label
        # The logger's own answers to `isEnabledFor`, read without the call (a Python frame:
        # -0.2k instructions a request, measured): logging fills this dict as it answers and
        # empties it in place whenever a level or `logging.disable` changes
        # (`Manager._clear_cache`). Where it is not a dict, it stays empty here and every request
        # asks `isEnabledFor`.
        levels = getattr(self._logger, "_cache", None)
        self._levels: dict[int, bool] = levels if isinstance(levels, dict) else {}

    def write(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        duration: float,
        request: RequestContext | None,
        ids: tuple[str, str] | None,
    ) -> None:
        logger = self._logger
        enabled = self._levels.get(_INFO)
        if enabled is None:
            enabled = logger.isEnabledFor(_INFO)
        if not enabled or logger.disabled:  # (`disabled` is checked before that dict is)
            return
        # Integer formatting, no float-to-text a request; `trunc` is `int()` of a float without
        # the type call's argument handling (~0.5k instructions less).
        micros = trunc(duration * 1_000_000)
        handler = _logs._installed  # `installed_handler()`, without the call
        root = self._root
        if (
            [handler] == root.handlers  # it is the only handler (compared by identity)
            and handler is not None
            and not logger.handlers
            and not logger.filters
            and logger.propagate
            # Between this logger and the root: nothing, or `pilothouse` (a logger of its own
            # once anything asked for it) with no handler of its own, passing records on.
            and ((parent := logger.parent) is root or (not parent.handlers and parent.propagate))  # type: ignore[union-attr]
            and not handler.filters
            and handler.level <= _INFO
            and isinstance(formatter := handler.formatter, JsonFormatter)
        ):
            route_json = self._routes.get(route)
            if route_json is None:
                route_json = self._routes[route] = json_string(route)
            fields = (formatter, time(), method, path, status, micros, route_json, request, ids)
            handler.defer(_render_lines, fields)
            return
        # `Logger.info` would also walk the stack for the caller's file and line: not needed here.
        message = _message(method, path, status, micros)
        record = logging.LogRecord(ACCESS_LOGGER, _INFO, "", 0, message, None, None)
        record.http_route = route
        record.status = status
        record.duration_ms = micros / 1000
        logger.handle(record)


def _message(method: str, path: str, status: int, micros: int) -> str:
    ms, frac = divmod(micros, 1000)
    return f"{method} {path} {status} {ms}.{frac // 100}ms"


# Integers as text by table lookup: turning an int into text costs more than the rest of a line's
# f-string; a line has a status and milliseconds, each written twice. A tuple indexed by an int
# is the interpreter's cheapest lookup (no call).
_TEXT = tuple(str(n) for n in range(1000))
_THREE_DIGITS = tuple(f"{n:03d}" for n in range(1000))
_TENTHS = tuple(str(n // 100) for n in range(1000))  # the message's one decimal of 0-999 µs

AccessFields = tuple[
    JsonFormatter, float, str, str, int, int, str, "RequestContext | None", "tuple[str, str] | None"
]
"""What a request queues for its access line: the formatter, the time, method, path, status,
duration in microseconds, the route as JSON, the request's context (request id, correlation
value, subject: read when the line is rendered, after the request), trace and span id."""


def _render_lines(queued: Sequence[AccessFields]) -> str:
    """The JSON access lines of `queued`, rendered when the handler writes its queue: each is
    `formatter.line` with the access fields, written out in one f-string for the usual line (a
    standard method, a path with nothing to escape or redact, no correlation or subject); any
    other goes through `formatter.line` (the same text either way, tested). One call and one
    loop for the batch, the timestamp up to the second made once per second. A `request_id` is
    one the middleware made or checked (`[\\w.:@/+=-]`): nothing to escape in it."""
    lines: list[str] = []
    append = lines.append
    redacting = bool(redaction._values)
    second = next_second = 0.0  # the second `second_text` shows (a float, as `created` is), the next
    second_text = ""
    for formatter, created, method, path, status, micros, route_json, request, ids in queued:
        if request is None:
            request_id = correlation = subject = None
        else:
            request_id, correlation, subject = request.request_id, request.correlation, request.subject
        ms, frac = divmod(micros, 1000)
        ms_text = _TEXT[ms] if 0 <= ms < 1000 else str(ms)
        status_text = _TEXT[status] if 0 <= status < 1000 else str(status)
        frac_text = _THREE_DIGITS[frac]
        # The message's numbers and a standard method need no check: its path does.
        if (
            correlation is None
            and subject is None
            and not redacting
            and method in STANDARD_METHODS
            and path.isprintable()
            and '"' not in path
            and "\\" not in path
            and "=" not in path
            and ":" not in path
        ):
            # What `json_string` writes as it is, in quotes: every text here.
            if not second <= created < next_second:  # (float comparisons: no call a line)
                whole = trunc(created)
                second = float(whole)
                next_second = second + 1.0
                second_text = (
                    formatter._second_text
                    if whole == formatter._second
                    else formatter._timestamp_second(whole)
                )
            rid = "" if request_id is None else f', "request_id": "{request_id}"'
            trace = "" if ids is None else f', "trace_id": "{ids[0]}", "span_id": "{ids[1]}"'
            append(
                f'{{"timestamp": "{second_text}{_MILLIS_Z[trunc((created - second) * 1000)]}", '
                f'"level": "info", "logger": "{ACCESS_LOGGER}", '
                f'"message": "{method} {path} {status_text} {ms_text}.{_TENTHS[frac]}ms"'
                f'{formatter._service_json}{rid}{trace}, "http_route": {route_json}, '
                f'"status": {status_text}, "duration_ms": {ms_text}.{frac_text}}}\n'
            )
            continue
        message = f"{method} {path} {status_text} {ms_text}.{_TENTHS[frac]}ms"
        extra = f', "http_route": {route_json}, "status": {status_text}, "duration_ms": {ms_text}.{frac_text}'
        if subject is not None:
            extra += f', "subject": {json_string(subject)}'
        append(formatter.line(created, ACCESS_LOGGER, message, request_id, correlation, ids, extra))
    return "".join(lines)

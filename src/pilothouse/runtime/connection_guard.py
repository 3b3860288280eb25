"""Connection limits uvicorn lacks: header-read and idle deadlines, a connection cap per port.

Why a protocol-level guard: uvicorn bounds only the idle time *between* keep-alive requests
(`timeout_keep_alive`), and any received byte cancels that timer. It has no timeout before the
first request and none for reading request headers (uvicorn issue #157), so a connection that
sends nothing, or headers without the final blank line, stays open for ever; ASGI middleware
cannot help, it runs only once a request is parsed. Its `limit_concurrency` answers 503 to
*requests*, while idle sockets keep their descriptors: enough of them use every descriptor of
the process and the ops port cannot accept a probe. So the HTTP protocol uvicorn chose (h11 or
httptools) is subclassed:

- idle: a connection that has not sent a byte of its next request (the first one included) is
  closed after `idle_timeout` (uvicorn's own keep-alive timer, also armed when it opens);
- header read: from the first byte of a request its headers must be complete within
  `header_timeout`, else the connection is closed;
- cap: beyond `max_connections` open connections on the port a new one is closed at once, its
  descriptor freed; the app port's cap is lowered below the open-file limit so the ops port and
  the process's own files always have descriptors left (`fd_cap`);
- a request whose body the parser rejects after the app started on it (a bad chunk) gets
  uvicorn's 400; the app's own answer is then dropped, not raised as h11's LocalProtocolError;
- on h11, the connection is a `SplicingConnection` and each request's scope offers its
  `add_headers` (`runtime.wire_headers`): the response headers Pilothouse made itself, written
  without h11 checking them again.

Closed connections are logged as counts at a bounded rate (`ThrottledLog`), never one line each,
and so are failed accepts: asyncio logs "socket.accept() out of system resource" with a
traceback on every attempt once descriptors run out, and its retry raises on a listener closed
meanwhile (`quiet_accept_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

from pilothouse.runtime.throttled_log import ThrottledLog
from pilothouse.runtime.wire_headers import WIRE_HEADERS, splicing_connection

log = logging.getLogger("pilothouse.server")

OTHER_DESCRIPTORS = 128
"""Descriptors kept (beside the ops port's cap) for log files, the job store, checks, telemetry
exporters and the app's own clients when the app port's cap is fitted under the open-file limit."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one port ("app" or "ops")."""

    port: str
    header_timeout: float
    idle_timeout: float
    max_connections: int


def fd_cap(requested: int, reserve: int) -> int:
    """`requested`, fitted so that `reserve` descriptors stay free under RLIMIT_NOFILE.

    The soft limit is raised first, up to the hard limit (containers and systemd often start
    processes with a soft limit of 1024 and a far higher hard one); only a hard limit too low
    for `requested + reserve` lowers the cap."""
    needed = requested + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return requested
    fitted = max(1, soft - reserve)
    log.warning(
        "app port: max_connections %d lowered to %d: the open-file limit is %d and %d descriptors "
        "are kept for the ops port and the process's own files",
        requested,
        fitted,
        soft,
        reserve,
    )
    return fitted


class _Guard(asyncio.Protocol):
    """Mixed in before uvicorn's protocol class; reads uvicorn's per-connection attributes."""

    limits: ClassVar[Limits]
    refused: ClassVar[ThrottledLog]
    slow_headers: ClassVar[ThrottledLog]
    # uvicorn's methods the per-request ones extend, found once (no `super()` object a call):
    _uvicorn_data_received: ClassVar[Any]
    _uvicorn_on_response_complete: ClassVar[Any]
    # uvicorn's attributes (h11 and httptools protocols have the same ones):
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    cycle: Any
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # h11: Pilothouse's own response headers go into the head as they are (`WIRE_HEADERS`).
        self._wire = splicing_connection(self)
        self._wire_add = self._wire.add_headers if self._wire is not None else None
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._seen: Any = None  # the last request cycle whose headers were complete
        if len(self.connections) > self.limits.max_connections:
            self.refused(
                f"{self.limits.port} port: {self.limits.max_connections} connections open "
                "([max_connections]); closing new ones at once"
            )
            self.transport.close()
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, _uvicorn(self).timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        seen = self._seen
        in_request = seen is not None and not seen.response_complete
        self._uvicorn_data_received(data)
        # A new cycle: these bytes completed a request's headers. The transport's
        # `get_protocol()` (a call, so second) tells a connection upgraded to a WebSocket.
        if self.cycle is not seen or self.transport.get_protocol() is not self:
            self._headers_complete()
        # The deadline is armed only when these bytes left a request's headers incomplete: a
        # request that arrives whole (the usual case) completes them in this same call, and a
        # timer armed to be cancelled at once is measurable per request (docs/performance.md,
        # "Deterministic telemetry cost"). The deadline is the same
        # (the loop's clock does not move within the call).
        elif self._header_timer is None and not in_request:
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def on_response_complete(self) -> None:
        self._uvicorn_on_response_complete()  # may start a pipelined request at once
        # Only a new cycle matters here: the deadline is never armed while a request is in
        # progress, so there is none to disarm (a pipelined upgrade included).
        if self.cycle is not self._seen:
            self._headers_complete()

    def _headers_complete(self) -> None:
        """A request's headers are complete (or the connection became a WebSocket): disarm the
        header deadline; a new request cycle gets the wire (`WIRE_HEADERS`)."""
        self._seen = cycle = self.cycle
        if (timer := self._header_timer) is not None:
            timer.cancel()
            self._header_timer = None
        if (wire := self._wire) is not None and cycle is not None:
            if wire.lines:
                wire.lines.clear()  # what a request that sent no response head left
            cycle.scope[WIRE_HEADERS] = self._wire_add

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.slow_headers(
                f"{self.limits.port} port: closed a connection that sent no complete request headers "
                f"within {self.limits.header_timeout:g}s ([header_timeout])"
            )
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def send_400_response(self, msg: str) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's answer, if any, is dropped: this one wins
            if cycle.response_started:  # too late for a 400: just close
                self.transport.close()
                return
        _uvicorn(self).send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


def _uvicorn(guard: _Guard) -> Any:
    """uvicorn's own implementation of a method the guard wraps (not on asyncio.Protocol)."""
    return super(_Guard, guard)


def guarded_protocol(limits: Limits, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class for `http` ("auto", "h11", "httptools") with `limits`."""
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    base = import_from_string(HTTP_PROTOCOLS[http])
    attributes = {
        "limits": limits,
        "refused": ThrottledLog(log),
        "slow_headers": ThrottledLog(log, logging.INFO),
        "_uvicorn_data_received": base.data_received,
        "_uvicorn_on_response_complete": base.on_response_complete,
    }
    return type(f"Guarded{base.__name__}", (_Guard, base), attributes)


ACCEPT_ERROR = "socket.accept() out of system resource"
"""The message asyncio's selector loop reports a failed accept() with (EMFILE, ENFILE, ENOBUFS,
ENOMEM); it stops accepting on that socket for a second and tries again."""


def _retry_on_a_closed_listener(context: dict[str, Any]) -> bool:
    """Whether `context` is asyncio's accept retry failing because the listener was closed.

    After a failed accept the selector loop schedules `_start_serving` one second later and
    nothing cancels that timer when the server closes: a shutdown within that second (SIGTERM
    while descriptors ran out) makes the retry raise "Invalid file descriptor: -1" on the closed
    socket. There is nothing left to serve, so nothing to report."""
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    if getattr(callback, "__name__", "") != "_start_serving" or not isinstance(
        context.get("exception"), ValueError
    ):
        return False
    return any(isinstance(arg, socket.socket) and arg.fileno() == -1 for arg in getattr(handle, "_args", ()))


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report failed accepts on `loop` as one throttled line without a traceback, and drop the
    retry asyncio still runs for a listener closed meanwhile; anything else goes to the handler
    set before (or asyncio's default)."""
    previous = loop.get_exception_handler()
    throttled = ThrottledLog(log, logging.ERROR)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_ERROR:
            throttled(f"cannot accept connections: {context.get('exception')}; retrying every second")
        elif _retry_on_a_closed_listener(context):
            log.debug("accept retry on a closed listener dropped")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

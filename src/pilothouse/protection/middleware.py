"""The protection middleware: the on-by-default parts of `[protection]` in one pure-ASGI pass.

Per HTTP request, each part only when configured: trusted-proxy resolution (`proxies`), header
count and size and body size checks and the route's time limit (`limits`), security headers on
every response (`headers`), and safe error bodies (`errors`). Every answer it gives itself is
problem+json (`problem`). One layer instead of one per part: each ASGI layer is a call, a
closure and a frame per request, and the defaults must stay within a few percent of bare.

It sits inside the runtime's in-flight layer (`Runtime.add_middleware(..., inner=True)`): a
handler cut at its time limit (`deadlines`) is answered here and never looks like a drain
drop, while a cancellation from the drain passes through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic

from pilothouse.asgi import ASGIApp, Message, Receive, Scope, Send, direct_call, respond
from pilothouse.config.protection import ProtectionConfig
from pilothouse.metrics import Metrics
from pilothouse.protection.deadlines import Deadlines, current_task, running_loop
from pilothouse.protection.errors import HeldErrorPage, UnhandledErrors
from pilothouse.protection.headers import SecurityHeaders
from pilothouse.protection.limits import BodyLimit, BodyTooLarge, LimitTable
from pilothouse.protection.problem import PROBLEM_JSON, problem_body
from pilothouse.protection.proxies import TrustedProxies
from pilothouse.protection.refusals import Refusals
from pilothouse.runtime.wire_headers import WIRE_HEADERS

log = logging.getLogger("pilothouse.protection")

_BODYLESS = frozenset(("GET", "HEAD"))
_TLS = frozenset(("https", "wss"))
_CLOSE = [(b"connection", b"close")]


class ProtectionMiddleware:
    """Wraps the app; see the module docstring."""

    __slots__ = (
        "_call_app",
        "_errors",
        "_headers",
        "_hold_500",
        "_limits",
        "_proxies",
        "_refusals",
        "_route",
        "_timeout_status",
        "app",
        "deadlines",
    )

    def __init__(self, app: ASGIApp, config: ProtectionConfig, metrics: Metrics | None) -> None:
        self.app = app
        self._call_app = direct_call(app)
        networks = config.proxy_networks()
        self._proxies = TrustedProxies(networks) if networks else None
        self._headers = SecurityHeaders(config.headers) if config.headers.enabled else None
        self._limits = LimitTable(config.limits) if config.limits.enabled else None
        # The limits of every path when no per-route limits are configured (the default).
        self._route = self._limits.default if self._limits is not None and not self._limits.routes else None
        self.deadlines = Deadlines()  # arms its timer only when a request is tracked
        self._timeout_status = config.limits.timeout_status
        self._errors = UnhandledErrors(metrics) if config.errors.enabled else None
        self._hold_500 = self._errors is not None
        self._refusals = Refusals(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._proxies is not None:
            self._proxies.resolve(scope)
        tls = scope["scheme"] in _TLS  # before the app runs: an app may rewrite its scope
        # h11 under `serve`: the security headers go to the connection as lines, unchecked by h11
        # (`runtime.wire_headers`); not for a 500 held for a safe page (it may be replaced).
        wire = scope.get(WIRE_HEADERS) if self._headers is not None else None
        started = False
        held: HeldErrorPage | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal started, held
            if held is not None:
                if not held.hold(message):  # too big to be an error page: it is the response
                    page, held, started = held, None, True
                    await page.flush(send)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                if (security := self._headers) is not None:
                    try:
                        headers = message["headers"]
                    except KeyError:
                        headers = ()
                    # `SecurityHeaders.add`, with its common case inline (a frame less per
                    # response): a list whose names were all seen before as none of ours.
                    if wire is not None and (status != 500 or not self._hold_500):
                        wire(security.lines(headers, status, tls))
                    elif headers.__class__ is not list or status >= 400:
                        message["headers"] = security.add(headers, status, tls)
                    else:
                        seen = security.seen
                        for name, _ in headers:
                            if name not in seen:
                                message["headers"] = security.add(headers, status, tls)
                                break
                        else:
                            message["headers"] = [*headers, *(security.tls if tls else security.plain)]
                if status == 500 and self._hold_500:
                    held = HeldErrorPage(message)
                    return
                started = True
            await send(message)

        task: asyncio.Task[object] | None = None
        if (limits := self._limits) is not None:
            request_headers = scope["headers"]
            if len(request_headers) > limits.max_header_count:
                await self._refusals.refuse(send_wrapper, scope, 431, "too_many_headers")
                return
            size = 0
            length: bytes | None = None
            chunked = False
            for name, value in request_headers:
                size += len(name) + len(value)
                if name == b"content-length":
                    length = value
                elif name == b"transfer-encoding":
                    chunked = True
            if size > limits.max_header_size:
                await self._refusals.refuse(send_wrapper, scope, 431, "headers_too_large")
                return
            # No per-route limits configured (the default): no lookup.
            route = self._route or limits.for_path(scope["path"])
            if length is not None:
                if length.isdigit() and int(length) > route.max_body_size:
                    await self._refusals.refuse(send_wrapper, scope, 413, "body_too_large", _CLOSE)
                    return
            elif chunked or scope["method"] not in _BODYLESS:
                receive = BodyLimit(receive, route.max_body_size).receive
            # The time limit (`Deadlines`), inline: per request, a frame less.
            loop = running_loop()
            if (task := current_task(loop)) is not None:
                deadlines = self.deadlines
                deadline = deadlines.running[task] = monotonic() + route.time_limit
                if deadline < deadlines.next or loop is not deadlines.loop:
                    deadlines.arm(loop, deadline)
        try:
            await self._call_app(scope, receive, send_wrapper)
        except BodyTooLarge:
            if started:
                raise
            held = None
            await self._refusals.refuse(send_wrapper, scope, 413, "body_too_large", _CLOSE)
            return
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise  # not ours: e.g. the drain deadline (the in-flight layer answers it)
            held = None
            if started:
                self._refusals.count("time_limit")
                log.warning(
                    "%s %s passed its time limit after its response started", scope["method"], scope["path"]
                )
                return
            await self._refusals.refuse(send_wrapper, scope, self._timeout_status, "time_limit")
            return
        except Exception as exc:
            if self._errors is None:
                raise
            held = None
            await self._unhandled(exc, scope, send, started, tls)
            return
        finally:
            if task is not None:
                try:
                    del self.deadlines.running[task]
                except KeyError:  # the timer took it out: cut here
                    self.deadlines.forget(task)
        if held is not None:  # the app's own 500, returned normally: its page passes untouched
            await held.flush(send)

    async def _unhandled(self, exc: Exception, scope: Scope, send: Send, started: bool, tls: bool) -> None:
        assert self._errors is not None
        self._errors.report(exc, scope, answered=not started)
        if started:
            return
        headers = list(self._headers.fixed(tls)) if self._headers is not None else None
        await respond(send, 500, problem_body(500), PROBLEM_JSON, headers)

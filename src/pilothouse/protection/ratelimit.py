"""Rate limits (`[[protection.rate_limits]]`, opt-in): per client address, API key header or
authenticated subject, on the paths each limit names; 429 problem+json with `Retry-After` and
the IETF `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-10:
`"name";q=100;w=60` and `"name";r=42;t=30`) on every response a limit applied to.

A Redis outage fails open (requests pass, unlimited) or closed (503 problem+json) as each limit
says; either way `pilothouse_rate_limit_backend_up{limit}` drops to 0, a warning is logged once
per outage, and readiness carries a check per Redis-backed limit (critical when it fails
closed, so the pod leaves the load balancer instead of answering 503s).

Keys from a header or a subject are hashed before they reach the store: an API key must not
become a Redis key name anyone with `KEYS *` can read.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from typing import Any

from pilothouse.asgi import ASGIApp, Headers, Message, Receive, Scope, Send
from pilothouse.catalog import protection as protection_metrics
from pilothouse.config.protection import RateLimitConfig
from pilothouse.metrics import Metrics
from pilothouse.protection.paths import path_matcher
from pilothouse.protection.principal import principal_of
from pilothouse.protection.ratelimit_store import Counters, Verdict
from pilothouse.protection.refusals import Refusals

log = logging.getLogger("pilothouse.protection")

KeyOf = Callable[[Scope], str | None]


def key_function(key: str) -> KeyOf:
    """How a limit names the caller: None means "not this limit's business" (no such header,
    not authenticated), and the request passes this limit."""
    if key == "client":
        return lambda scope: scope["client"][0] if scope.get("client") else None
    if key == "subject":

        def subject(scope: Scope) -> str | None:
            principal = principal_of(scope)
            return _digest(principal.subject) if principal is not None else None

        return subject
    name = key.removeprefix("header:").lower().encode()

    def header(scope: Scope) -> str | None:
        for key_name, value in scope["headers"]:
            if key_name == name:
                return _digest(value.decode("latin-1"))
        return None

    return header


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Limit:
    """One configured limit with its store and its health."""

    __slots__ = ("_up", "config", "counters", "fail_open", "healthy", "key_of", "matches", "policy")

    def __init__(self, config: RateLimitConfig, counters: Counters, metrics: Metrics | None) -> None:
        self.config = config
        self.counters = counters
        self.matches = path_matcher(config.paths)
        self.key_of = key_function(config.key)
        self.fail_open = config.on_backend_error == "open"
        self.policy = f'"{config.name}";q={config.limit};w={max(1, math.ceil(config.window))}'.encode()
        self.healthy = True
        gauge: Any = metrics.gauge(protection_metrics.RATE_LIMIT_BACKEND_UP) if metrics else None
        self._up = gauge.labels(config.name) if gauge is not None else None
        if self._up is not None:
            self._up.set(1)

    def backend(self, ok: bool, error: BaseException | None = None) -> None:
        if ok == self.healthy:
            return
        self.healthy = ok
        if self._up is not None:
            self._up.set(1 if ok else 0)
        if ok:
            log.info("rate limit %r: its store answers again", self.config.name)
        else:
            what = "letting requests through (fail open)" if self.fail_open else "answering 503 (fail closed)"
            log.warning(
                "rate limit %r: its store failed (%s); %s", self.config.name, type(error).__name__, what
            )

    def fields(self, verdict: Verdict) -> Headers:
        seconds = math.ceil(verdict.reset_ms / 1000)
        current = f'"{self.config.name}";r={verdict.remaining};t={seconds}'.encode()
        return [(b"ratelimit-policy", self.policy), (b"ratelimit", current)]


class RateLimitMiddleware:
    """Applies every matching limit in order; the first that refuses answers."""

    __slots__ = ("_limits", "_refusals", "app")

    def __init__(self, app: ASGIApp, limits: list[Limit], metrics: Metrics | None) -> None:
        self.app = app
        self._limits = tuple(limits)
        self._refusals = Refusals(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        fields: Headers = []
        for limit in self._limits:
            if not limit.matches(path):
                continue
            key = limit.key_of(scope)
            if key is None:
                continue
            try:
                verdict = await limit.counters.hit(key)
            except Exception as exc:  # the store is down or slow: its own timeout bounds the wait
                limit.backend(False, exc)
                if limit.fail_open:
                    continue
                await self._refusals.refuse(
                    send, scope, 503, "rate_limit_unavailable", [(b"retry-after", b"1")]
                )
                return
            limit.backend(True)
            fields.extend(limit.fields(verdict))
            if not verdict.allowed:
                retry = str(max(1, math.ceil(verdict.reset_ms / 1000))).encode()
                await self._refusals.refuse(
                    send, scope, 429, "rate_limited", [(b"retry-after", retry), *fields]
                )
                return
        if not fields:
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)

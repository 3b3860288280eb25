"""What a log line knows about the request it was written in: one context variable.

The middleware sets a `RequestContext` per HTTP request; log formatters and `set_correlation`
read it. Mutable on purpose: app code may set the correlation value halfway through a request.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestContext:
    """Request-scoped log fields."""

    __slots__ = ("correlation", "request_id", "subject")

    def __init__(self, request_id: str | None, correlation: str | None = None) -> None:
        self.request_id = request_id
        self.correlation = correlation
        self.subject: str | None = None
        """Who the request authenticated as ([protection.auth]); never a credential."""


current_request: ContextVar[RequestContext | None] = ContextVar("pilothouse_request", default=None)

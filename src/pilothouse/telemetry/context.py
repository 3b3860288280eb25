"""What a log line knows about the request it was written in: one context variable.

The middleware sets a `RequestContext` per HTTP request; log formatters and `set_correlation`
read it. Mutable on purpose: app code may set the correlation value halfway through a request.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestContext:
    """Request-scoped log fields. No `__init__`: the middleware makes one per request and sets
    the three fields itself, without the frame a Python `__init__` costs (about 0.8k
    instructions); anything else uses `request_context`."""

    __slots__ = ("correlation", "request_id", "subject")

    request_id: str | None
    correlation: str | None
    subject: str | None
    """Who the request authenticated as ([protection.auth]); never a credential."""


def request_context(request_id: str | None, correlation: str | None = None) -> RequestContext:
    """A `RequestContext` with these fields and no subject yet."""
    context = RequestContext()
    context.request_id = request_id
    context.correlation = correlation
    context.subject = None
    return context


current_request: ContextVar[RequestContext | None] = ContextVar("pilothouse_request", default=None)

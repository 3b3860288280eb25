"""ASGI type aliases (the spec's shapes, without a framework), one response helper, and how a
layer calls the app inside it."""

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from types import FunctionType, MethodType
from typing import Any, cast

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]


def direct_call(app: ASGIApp) -> ASGIApp:
    """What to call `app` by on the request path: for an instance whose class defines
    `__call__` in Python (a middleware, a Starlette app), that method bound to it. Calling the
    instance goes through the `__call__` C slot, a method lookup and an argument tuple each time
    outside the interpreter's inlined calls; the bound method is called like a function (about
    0.8k instructions a call on CPython 3.11, docs/performance.md "Fifth pass"). Anything else
    as it is."""
    call = inspect.getattr_static(type(app), "__call__", None)
    if isinstance(call, FunctionType):
        return cast("ASGIApp", MethodType(call, app))
    return app


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    headers: Headers | None = None,
) -> None:
    """Send a complete, uncached response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Response headers Pilothouse made itself, written on h11 without h11 checking them again.

h11 (uvicorn's default HTTP parser, pure Python) validates every response header and checks the
whole list again for each framing header it sets: about 16k instructions per added header on
Python 3.11, a quarter of what `[telemetry]`'s defaults cost on h11 (docs/performance.md, "Fourth
pass (issue 19)"). The request id and `traceparent` the telemetry middleware returns, and the
security headers of `[protection.headers]`, are values Pilothouse generated or checked itself
(the request id against a stricter pattern than h11's, header names and configured values at
config load, `traceparent` formatted from ints), so that check would find nothing.

So when `pilothouse serve` runs on h11, the connection guard gives uvicorn's protocol a
`SplicingConnection`, and each request's scope carries its `add_headers` under `WIRE_HEADERS`:
complete `name: value\\r\\n` lines, which the next response head on that connection gets
before its blank line, after h11 has checked and written the app's own headers. The telemetry
and protection middleware hand their lines over there instead of appending them to the ASGI
message. Everything h11 decides (framing, keep-alive, its state machine) is unchanged: these are
never framing headers. Under any other server (httptools, a test client) the scope has no such key and the
middleware appends to the message as before; ASGI middleware outside Pilothouse's does not see
these headers in the message on h11.

The connection is a subclass made at the start, not patched per response: an attribute added to
an h11 connection later turns its attribute reads slow for the rest of its life (CPython 3.11's
shared-key instance dicts; measured +33k instructions a request).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h11

WIRE_HEADERS = "pilothouse.wire_headers"
"""The scope key of `SplicingConnection.add_headers` for the request's connection (h11 under
`serve`)."""


class SplicingConnection(h11.Connection):
    """An `h11.Connection` that writes `add_headers`' lines into its next response head."""

    def __init__(self, our_role: Any, max_incomplete_event_size: int) -> None:
        super().__init__(our_role, max_incomplete_event_size)
        self.lines: list[bytes] = []
        self.add_headers = self.lines.append
        """Write these lines (valid `name: value\\r\\n` header lines) into the next response
        head: the list's own `append`, so a request's middleware calls no Python function."""

    def send(self, event: h11.Event) -> bytes | None:  # type: ignore[override]
        # h11's own `send` (the events as one bytes object), with the lines inserted into a
        # response head, which ends with its blank line as a chunk of its own.
        data = self.send_with_data_passthrough(event)
        if data is None:
            return None
        if (lines := self.lines) and type(event) is h11.Response:
            data[-1:-1] = lines
            lines.clear()
        return b"".join(data)


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """`(name, value)` pairs as they stand in a response head: what `add_headers` takes."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def splicing_connection(protocol: Any) -> SplicingConnection | None:
    """Give uvicorn's h11 protocol (its `conn`, before any byte was read) a `SplicingConnection`
    of the same size limit; None for a protocol without one (httptools), and None (h11's own
    connection kept, the ASGI path used) if h11 no longer keeps that limit where it does today."""
    conn = getattr(protocol, "conn", None)
    limit = getattr(conn, "_max_incomplete_event_size", None)  # h11's own, set in its __init__
    if type(conn) is not h11.Connection or not isinstance(limit, int):
        return None
    conn = SplicingConnection(h11.SERVER, limit)
    protocol.conn = conn
    return conn

"""W3C `traceparent` read and written by hand: the request path needs only these few lines, not
a propagator building an OpenTelemetry `Context` per request.

    00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    version-trace id (32 hex)-parent span id (16 hex)-flags (2 hex)

Parsing follows the W3C rules the OpenTelemetry propagator applies: lowercase hex, non-zero ids,
version `ff` invalid, version `00` exactly 55 characters, later versions may append `-...`.
"""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse(header: str) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a valid header, else None (start a new trace)."""
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags_hex, 16)


_FLAGS_HEX = tuple(f"{flags:02x}" for flags in range(256))


def format_header(trace_hex: str, span_hex: str, flags: int) -> bytes:
    """The `traceparent` value for a span, from its ids already formatted as hex."""
    return f"00-{trace_hex}-{span_hex}-{_FLAGS_HEX[flags]}".encode()

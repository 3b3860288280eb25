"""OTLP protobuf (`ExportTraceServiceRequest`) encoded straight from finished spans.

Why hand-written: the OpenTelemetry exporter's encoder (`opentelemetry-exporter-otlp-proto-common`)
builds a tree of generated protobuf message objects per span (the span, every attribute's
`KeyValue` and `AnyValue`, its status, events, links), then serializes the tree. Measured with
`bench/otlp_encode.py` (docs/performance.md, "OTLP encoding") that is several times the cost of
writing the wire format directly, which is what this module does for the handful of messages a
trace export needs. Attribute keys, the resource and the instrumentation scope repeat from span
to span, so their encodings are cached. The result is decoded with the official protobuf
definitions (`opentelemetry-proto`) in tests/telemetry/test_otlp_export.py, for every value type,
events, links, status and both transports.

Wire format (https://protobuf.dev/programming-guides/encoding/): a field is a varint tag
`(number << 3) | wire_type` then its value: a varint (type 0), 8 little-endian bytes (type 1),
or a varint length and that many bytes (type 2: strings, bytes, nested messages); 4 bytes for
type 5. Field numbers are those of opentelemetry/proto/trace/v1/trace.proto,
common/v1/common.proto, resource/v1/resource.proto and
collector/trace/v1/trace_service.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from pilothouse.telemetry._otel_compat import SPAN_CONTEXT_IS_TUPLE
from pilothouse.telemetry.server_span import _UNSET as _SERVER_UNSET
from pilothouse.telemetry.server_span import ServerSpan

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# SpanFlags (trace.proto): the low 8 bits are the W3C trace flags; bit 8 says whether bit 9 (the
# parent is remote) is known.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

# SDK `SpanKind` values (INTERNAL=0 ... CONSUMER=4) are OTLP's minus one (0 is UNSPECIFIED).
_KIND = {kind: bytes((0x30, kind.value + 1)) for kind in SpanKind}
# Status codes: UNSET=0, OK=1, ERROR=2 in both the SDK and OTLP.


def varint(value: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (bytes((n,)) if n < 0x80 else varint(n)) + payload


def _string(tag: bytes, text: str) -> bytes:
    return _length_delimited(tag, text.encode())


# -- attribute values (common.proto AnyValue: string=1 bool=2 int=3 double=4 array=5 bytes=7) -------


def _any_value(value: Any) -> bytes:
    kind = type(value)
    if kind is str:
        return _string(b"\x0a", value)
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    if kind is float:
        return b"\x21" + _pack_double(value)
    if isinstance(value, (bytes, bytearray)):
        return _length_delimited(b"\x3a", bytes(value))
    if isinstance(value, (list, tuple)):  # ArrayValue { repeated AnyValue values = 1 }
        return _length_delimited(b"\x2a", b"".join(_length_delimited(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):  # KeyValueList { repeated KeyValue values = 1 }
        return _length_delimited(
            b"\x32", b"".join(_length_delimited(b"\x0a", _key_value(k, v)) for k, v in value.items())
        )
    if isinstance(value, bool):  # a bool subclass (numpy's is not, but be exact)
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(int(value) & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_double(float(value))
    return _string(b"\x0a", str(value))


_KEYS: dict[str, bytes] = {}
_MAX_CACHED_KEYS = 4096  # attribute keys are few; a bound keeps odd apps from growing it forever


def _key(key: str) -> bytes:
    """`KeyValue.key` (field 1) with its tag and length, cached per key."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _string(b"\x0a", key)
        if len(_KEYS) < _MAX_CACHED_KEYS:
            _KEYS[key] = encoded
    return encoded


def _key_value(key: str, value: Any) -> bytes:
    """KeyValue { string key = 1; AnyValue value = 2 }"""
    return _key(key) + _length_delimited(b"\x12", _any_value(value))


# Whole attribute fields (tag, length, KeyValue) of short texts and ints: most attributes repeat
# from span to span (method, route, status, scheme). Per field tag, two caches keyed by the
# attribute's `(key, value)` item as `items()` gives it, one for exact str values and one for
# exact int values (`True == 1 == 1.0` never mix: only ints are cached there and it is asked
# about ints only; floats are not cached: `0.0 == -0.0`, `nan != nan`): one lookup and no key
# tuple per cached attribute. A key's
# values are dropped when it holds too many, so values that never repeat (paths with ids) cannot
# keep out the ones that do for long.
_Item = tuple[str, Any]
_MAX_CACHED_VALUES = 512  # per key and type
_MAX_CACHED_KEYS_PER_TAG = 1024
_MAX_CACHED_TEXT = 64


class _FieldCache:
    __slots__ = ("ints", "items_by_key", "texts")

    def __init__(self) -> None:
        self.texts: dict[_Item, bytes] = {}
        self.ints: dict[_Item, bytes] = {}
        self.items_by_key: dict[tuple[str, type], list[_Item]] = {}  # what is cached, to bound it


_FIELDS: dict[bytes, _FieldCache] = {}


def _field_cache(tag: bytes) -> _FieldCache:
    cache = _FIELDS.get(tag)
    if cache is None:
        cache = _FIELDS[tag] = _FieldCache()
    return cache


def _new_field(cache: _FieldCache, tag: bytes, item: _Item) -> bytes:
    """The attribute field of an item not in `cache`, added to it when it is a short text or an
    int."""
    key, value = item
    encoded = _length_delimited(tag, _key_value(key, value))
    kind = type(value)
    if kind is int or (kind is str and len(value) <= _MAX_CACHED_TEXT):
        target = cache.texts if kind is str else cache.ints
        by_key = cache.items_by_key
        cached = by_key.get((key, kind))
        if cached is None:
            if len(by_key) >= _MAX_CACHED_KEYS_PER_TAG:
                by_key.clear()
                cache.texts.clear()
                cache.ints.clear()
            cached = by_key[(key, kind)] = []
        elif len(cached) >= _MAX_CACHED_VALUES:
            for old in cached:
                target.pop(old, None)
            cached.clear()
        cached.append(item)
        target[item] = encoded
    return encoded


def _add_attributes(out: list[bytes], tag: bytes, attributes: Mapping[str, Any] | None) -> None:
    """Every attribute as a repeated KeyValue field `tag`, appended to `out`. The texts' cache is
    asked about every item whatever its value's type: only a text equals a text, so no int,
    bool or float can take a text's field (the ints' cache, where `True == 1` could, is asked
    by type)."""
    if not attributes:
        return
    cache = _FIELDS.get(tag) or _field_cache(tag)
    texts, ints = cache.texts, cache.ints
    start = len(out)
    try:
        for item in attributes.items():
            encoded = texts.get(item)
            if encoded is None:
                encoded = ints.get(item) if type(item[1]) is int else None
                if encoded is None:
                    encoded = _new_field(cache, tag, item)
            out.append(encoded)
    except TypeError:  # an unhashable value (a list, in a span an exporter built by hand)
        out[start:] = [_new_field(cache, tag, item) for item in attributes.items()]


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Every attribute as a repeated KeyValue field `tag`."""
    out: list[bytes] = []
    _add_attributes(out, tag, attributes)
    return b"".join(out)


# -- spans ----------------------------------------------------------------------------------


def _flags(trace_flags: int, parent: Any) -> bytes:
    """Span/Link `flags` (field 16 of Span, 6 of Link: fixed32)."""
    flags = trace_flags | _HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _IS_REMOTE
    return _pack_fixed32(flags)


def _event(event: Any) -> bytes:
    """Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3 }"""
    return (
        b"\x09"
        + _pack_fixed64(event.timestamp)
        + _string(b"\x12", event.name)
        + _attributes(b"\x1a", event.attributes)
    )


def _link(link: Any) -> bytes:
    """Link { trace_id = 1; span_id = 2; trace_state = 3; attributes = 4; flags = 6 }"""
    context = link.context
    state = context.trace_state
    encoded: bytes = (
        b"\x0a\x10"
        + context.trace_id.to_bytes(16, "big")
        + b"\x12\x08"
        + context.span_id.to_bytes(8, "big")
        + (_string(b"\x1a", state.to_header()) if state else b"")
        + _attributes(b"\x22", link.attributes)
        + b"\x35"
        + _flags(context.trace_flags, context)
    )
    return encoded


_UNSET_STATUS = b"\x7a\x00"  # present and empty, as the SDK's encoder writes it


def _status(status: Any) -> bytes:
    """Status { string message = 2; StatusCode code = 3 } (field 15 of Span)."""
    code = status.status_code
    if code is StatusCode.UNSET:
        return _UNSET_STATUS
    body = (_string(b"\x12", status.description) if status.description else b"") + bytes((0x18, code.value))
    return _length_delimited(b"\x7a", body)


def encode_span(span: Any) -> bytes:
    """One Span message (without its tag and length): any SDK `ReadableSpan`."""
    context = span.context
    parent = span.parent
    state = context.trace_state
    out = [
        b"\x0a\x10",
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        context.span_id.to_bytes(8, "big"),
    ]
    if state:
        out.append(_string(b"\x1a", state.to_header()))
    if parent is not None:
        out.append(b"\x22\x08")
        out.append(parent.span_id.to_bytes(8, "big"))
    out.append(_string(b"\x2a", span.name))
    out.append(_KIND[span.kind])
    out.append(b"\x39")
    out.append(_pack_fixed64(span.start_time or 0))
    out.append(b"\x41")
    out.append(_pack_fixed64(span.end_time or 0))
    out.append(_attributes(b"\x4a", span.attributes))
    dropped = span.dropped_attributes
    if dropped:
        out.append(b"\x50" + varint(dropped))
    for event in span.events:
        out.append(_length_delimited(b"\x5a", _event(event)))
    dropped = span.dropped_events
    if dropped:
        out.append(b"\x60" + varint(dropped))
    for link in span.links:
        out.append(_length_delimited(b"\x6a", _link(link)))
    dropped = span.dropped_links
    if dropped:
        out.append(b"\x70" + varint(dropped))
    out.append(_status(span.status))
    out.append(b"\x85\x01")  # field 16, fixed32
    out.append(_flags(context.trace_flags, parent))
    return b"".join(out)


# -- the request path's server spans --------------------------------------------------------

_pack_ids = struct.Struct(">HQQHQ").pack  # trace_id (1) and span_id (2): tags, then big-endian ids
_pack_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano (7), end_time_unix_nano (8)
_pack_flags = struct.Struct("<HI").pack  # flags (16): its two-byte tag 0x85 0x01, then fixed32
_LOW_64 = (1 << 64) - 1
_NAMES: dict[str, bytes] = {}  # a server span's name (5) and kind (6) fields, by name
_MAX_CACHED_NAMES = 1024  # names are `METHOD /route`: bounded like the route label


def _server_name(name: str) -> bytes:
    encoded = _string(b"\x2a", name) + _KIND[SpanKind.SERVER]
    if len(_NAMES) >= _MAX_CACHED_NAMES:
        _NAMES.clear()
    _NAMES[name] = encoded
    return encoded


def _tails() -> tuple[bytes, ...]:
    """The last two fields of a server span with the UNSET status, by its W3C trace flags
    (the low 8 bits of `flags`) plus 256 when its parent is remote."""
    return tuple(
        _UNSET_STATUS + _pack_flags(0x0185, flags | _HAS_IS_REMOTE | (_IS_REMOTE if remote else 0))
        for remote in (False, True)
        for flags in range(256)
    )


_UNSET_TAILS = _tails()


def encode_server_span(span: ServerSpan) -> bytes:
    """What `encode_span` writes for a Pilothouse `ServerSpan` (the same bytes, tested), read from
    its fields rather than through `ReadableSpan`'s properties (each a call, some a copy) and
    with the parts every server span shares packed together or looked up: the request path's
    span, one per traced request, is most of what is exported."""
    trace_id, span_id, _, trace_flags, state, _ = span._context  # type: ignore[misc]  # a tuple
    parent = span._parent
    name = span._name
    head = _pack_ids(0x0A10, trace_id >> 64, trace_id & _LOW_64, 0x1208, span_id)
    if state is not DEFAULT_TRACE_STATE and state:  # (a TraceState's truth is a Python call)
        head += _string(b"\x1a", state.to_header())
    if parent is not None:
        head += b"\x22\x08" + parent[1].to_bytes(8, "big")  # its span_id
        if parent[2]:  # is_remote
            trace_flags += 256
    out = [
        head,
        _NAMES.get(name) or _server_name(name),
        _pack_times(0x39, span._start_time, 0x41, span._end_time or 0),
    ]
    _add_attributes(out, b"\x4a", span._attributes)
    if span._events or span._links or span._status is not _SERVER_UNSET:
        out.append(_rest_of_server_span(span, trace_flags))
    else:
        out.append(_UNSET_TAILS[trace_flags])
    return b"".join(out)


def _rest_of_server_span(span: ServerSpan, flags: int) -> bytes:
    """A server span's events, links, status and flags (`flags`: as `_UNSET_TAILS` takes them)."""
    out = [_length_delimited(b"\x5a", _event(event)) for event in span._events]
    out += [_length_delimited(b"\x6a", _link(link)) for link in span._links]
    status = span._status
    out.append(_UNSET_STATUS if status is _SERVER_UNSET else _status(status))
    out.append(_pack_flags(0x0185, (flags & 0xFF) | _HAS_IS_REMOTE | (_IS_REMOTE if flags > 0xFF else 0)))
    return b"".join(out)


# -- resource and scope (cached: one or two per process) -------------------------------------

_RESOURCES: dict[int, tuple[Any, bytes]] = {}
_SCOPES: dict[int, tuple[Any, bytes]] = {}


def _resource(resource: Any) -> bytes:
    """ResourceSpans.resource (field 1): Resource { repeated KeyValue attributes = 1 }."""
    cached = _RESOURCES.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    encoded = _length_delimited(b"\x0a", _attributes(b"\x0a", resource.attributes)) if resource else b""
    _RESOURCES[id(resource)] = (resource, encoded)
    return encoded


def _scope(scope: Any) -> bytes:
    """ScopeSpans.scope (field 1): InstrumentationScope { name = 1; version = 2; attributes = 3 }."""
    cached = _SCOPES.get(id(scope))
    if cached is not None and cached[0] is scope:
        return cached[1]
    if scope is None:  # present and empty, as the SDK's encoder writes it
        encoded = b"\x0a\x00"
    else:
        body = _string(b"\x0a", scope.name or "")
        if scope.version:
            body += _string(b"\x12", scope.version)
        body += _attributes(b"\x1a", getattr(scope, "attributes", None))
        encoded = _length_delimited(b"\x0a", body)
    _SCOPES[id(scope)] = (scope, encoded)
    return encoded


def _schema_url(tag: bytes, holder: Any) -> bytes:
    url = getattr(holder, "schema_url", None) if holder is not None else None
    return _string(tag, url) if url else b""


# The spans `encode_server_span` takes (it reads a span's context as the tuple of its fields).
_SERVER_SPAN = ServerSpan if SPAN_CONTEXT_IS_TUPLE else None
_SPAN_FIELDS: dict[int, bytes] = {}  # ScopeSpans.spans (2): the tag and length, by length


def _span_field(length: int) -> bytes:
    encoded = b"\x12" + varint(length)
    if length < 0x4000:
        _SPAN_FIELDS[length] = encoded
    return encoded


def _group(
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]], resource: Any, scope: Any
) -> list[bytes]:
    """The list the spans of `resource` and `scope` are encoded into."""
    by_scope = groups.get(id(resource))
    if by_scope is None:
        by_scope = groups[id(resource)] = (resource, {})
    entry = by_scope[1].get(id(scope))
    if entry is None:
        entry = by_scope[1][id(scope)] = (scope, [])
    return entry[1]


def encode_request(spans: Iterable[Any]) -> bytes:
    """ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 } for `spans`,
    grouped by resource, then by instrumentation scope (in first-seen order)."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    # The group of the last span: a server span's is its starter's (one resource and scope).
    # `unseen` until the first span, so that it always looks its group up.
    unseen: Any = object()
    last_starter = last_resource = last_scope = unseen
    encoded: list[bytes] = []
    for span in spans:
        if type(span) is _SERVER_SPAN:
            starter = span._spans
            if starter is not last_starter:
                last_starter, last_resource, last_scope = starter, unseen, unseen
                encoded = _group(groups, starter.resource, starter.scope)
            body = encode_server_span(span)
        else:
            resource, scope = span.resource, span.instrumentation_scope
            if last_starter is not unseen or resource is not last_resource or scope is not last_scope:
                last_starter, last_resource, last_scope = unseen, resource, scope
                encoded = _group(groups, resource, scope)
            body = encode_span(span)
        n = len(body)
        encoded += (_SPAN_FIELDS.get(n) or _span_field(n), body)
    out: list[bytes] = []
    for resource, scopes in groups.values():
        body_parts = [_resource(resource)]
        for scope, parts in scopes.values():
            body_parts.append(
                _length_delimited(b"\x12", _scope(scope) + b"".join(parts) + _schema_url(b"\x1a", scope))
            )
        body_parts.append(_schema_url(b"\x1a", resource))
        out.append(_length_delimited(b"\x0a", b"".join(body_parts)))
    return b"".join(out)

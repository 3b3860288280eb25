"""Pilothouse's own response headers on h11 (`runtime.wire_headers`: the request id,
`traceparent`, the security headers): written into the head without h11's second check, they
must reach the client exactly as the ASGI path sends them.

`pilothouse serve` runs for real on h11 (the wire path) and on httptools (the ASGI message path),
and the responses are read by h11's own client-side parser, which rejects any malformed head."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import h11
import pytest

from pilothouse.runtime.wire_headers import SplicingConnection
from tests.helpers import ROOT, ServeProcess, write_config

CONFIG = """
[service]
name = "svc"
app = "tests.apps.slow:app"
http = "{http}"
loop = "asyncio"
[telemetry]
traces = "console"
[ops]
admin_token_env = "SVC_ADMIN_TOKEN"
[lifecycle]
pre_stop_delay = "0s"
"""

TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]")
GIVEN_ID = "client-chosen.id:42"
# One keep-alive connection: a request id given and kept, a generated one, a HEAD, an error
# status, a continued trace.
REQUESTS = [
    h11.Request(method="GET", target="/hello", headers=[("Host", "x"), ("X-Request-ID", GIVEN_ID)]),
    h11.Request(method="GET", target="/slow?seconds=0", headers=[("Host", "x")]),
    h11.Request(method="HEAD", target="/hello", headers=[("Host", "x")]),
    h11.Request(method="GET", target="/status?code=503", headers=[("Host", "x")]),
    h11.Request(
        method="GET",
        target="/hello",
        headers=[("Host", "x"), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    ),
    h11.Request(method="GET", target="/own-policy", headers=[("Host", "x")]),
]
# `[protection.headers]` defaults on a plain-HTTP request (the 503 also gets `cache-control`).
SECURITY = (b"x-content-type-options", b"referrer-policy", b"content-security-policy")


def read_response(conn: h11.Connection, sock: socket.socket) -> tuple[h11.Response, bytes]:
    """The next response on `sock` (its request already sent through `conn`), parsed by h11's
    client, and its body; `conn` is ready for the next request."""
    response, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
    assert response is not None
    conn.start_next_cycle()
    return response, body


def exchange(port: int) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """REQUESTS on one connection, each response parsed by h11's client: (status, headers, body)."""
    conn = h11.Connection(h11.CLIENT)
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for request in REQUESTS:
            sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
            response, body = read_response(conn, sock)
            answers.append((response.status_code, list(response.headers), body))
    return answers


def serve_config(tmp_path: Path, http: str) -> Path:
    (tmp_path / http).mkdir()
    return write_config(tmp_path / http, CONFIG.format(http=http))


def served(tmp_path: Path, http: str) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    with ServeProcess(serve_config(tmp_path, http), cwd=ROOT) as server:
        return exchange(server.app_port)


def values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_the_request_id_and_traceparent_reach_the_client_once_in_a_valid_head(
    tmp_path: Path, http: str
) -> None:
    answers = served(tmp_path, http)
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 200, 503, 200, 200]
    assert [body for _, _, body in answers] == [b"hello", b'{"slept":0.0}', b"", b"status", b"hello", b"own"]
    for status, headers, _ in answers:
        assert len(values(headers, b"x-request-id")) == 1
        assert all(len(values(headers, name)) == 1 for name in SECURITY)
        assert values(headers, b"cache-control") == ([b"no-store"] if status >= 400 else [])
        (traceparent,) = values(headers, b"traceparent")
        assert TRACEPARENT.fullmatch(traceparent)
        assert values(headers, b"content-type")  # the app's own headers are all there
    ids = [values(headers, b"x-request-id")[0] for _, headers, _ in answers]
    traces = [TRACEPARENT.fullmatch(values(headers, b"traceparent")[0]).group(1) for _, headers, _ in answers]  # type: ignore[union-attr]
    assert ids[0] == GIVEN_ID.encode()
    assert ids[1] == traces[1]  # a request starting a trace takes its id
    assert len(set(ids)) == len(ids)
    assert traces[4] == b"0af7651916cd43dd8448eb211c80319c"  # continued
    assert values(answers[5][1], b"content-security-policy") == [b"default-src 'self'"]  # the app's own


def test_both_paths_send_the_same_headers_in_the_same_order(tmp_path: Path) -> None:
    def names(answers: list[tuple[int, list[tuple[bytes, bytes]], bytes]]) -> list[list[bytes]]:
        return [[key for key, _ in headers] for _, headers, _ in answers]

    assert names(served(tmp_path, "h11")) == names(served(tmp_path, "httptools"))


def response_head(conn: h11.Connection) -> bytes:
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    conn.next_event()  # the end of the request
    head = conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
    body = conn.send(h11.Data(data=b"ok")) + conn.send(h11.EndOfMessage())
    assert body == b"ok"
    conn.start_next_cycle()
    assert head is not None
    return head


def test_lines_go_into_the_next_head_only() -> None:
    conn = SplicingConnection(h11.SERVER, 16384)
    conn.add_headers(b"x-one: 1\r\n")
    conn.add_headers(b"x-two: 2\r\n")
    assert response_head(conn) == b"HTTP/1.1 200 \r\ncontent-length: 2\r\nx-one: 1\r\nx-two: 2\r\n\r\n"
    assert response_head(conn) == b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"  # taken once
    assert response_head(h11.Connection(h11.SERVER)) == response_head(SplicingConnection(h11.SERVER, 16384))


def read_responses(sock: socket.socket, count: int) -> list[h11.Response]:
    """`count` responses from `sock` to GET requests already sent as raw bytes (pipelined)."""
    conn = h11.Connection(h11.CLIENT)
    responses = []
    for _ in range(count):
        # The client's state machine needs a request it "sent"; this one matches the raw bytes.
        conn.send(h11.Request(method="GET", target="/hello", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        responses.append(read_response(conn, sock)[0])
    return responses


def test_pipelined_requests_and_100_continue_each_get_their_own_headers_once(tmp_path: Path) -> None:
    """Two requests in one packet (the second cycle starts when the first response completes)
    and a request waiting for `100 Continue` (an informational head, which takes no lines)."""
    with ServeProcess(serve_config(tmp_path, "h11"), cwd=ROOT) as server:
        with socket.create_connection(("127.0.0.1", server.app_port), timeout=10) as sock:
            sock.sendall(
                b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n"
                b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-ID: second\r\n\r\n"
            )
            first, second = read_responses(sock, 2)
        assert values(list(first.headers), b"x-request-id") == [b"first"]
        assert values(list(second.headers), b"x-request-id") == [b"second"]
        with socket.create_connection(("127.0.0.1", server.app_port), timeout=10) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                b"X-Request-ID: waited\r\n\r\n"
            )
            received = b""
            while b"\r\n\r\n" not in received:  # the 100 Continue, sent when the app reads
                received += sock.recv(65536)
            sock.sendall(b"ok")
            while not received.endswith(b"\r\n\r\nok"):
                received += sock.recv(65536)
        informational, final, body = received.split(b"\r\n\r\n")
        assert informational == b"HTTP/1.1 100 Continue"  # no header lines
        assert final.startswith(b"HTTP/1.1 200 ") and final.count(b"\r\nx-request-id: waited") == 1
        assert body == b"ok"


def test_an_h11_without_the_size_limit_where_it_is_today_keeps_its_own_connection() -> None:
    """`splicing_connection` reads one h11 attribute that is not public API; if an h11 release
    moves it, the connection stays h11's own (the ASGI path) instead of every connection failing."""
    from types import SimpleNamespace

    from pilothouse.runtime.wire_headers import splicing_connection

    usual = SimpleNamespace(conn=h11.Connection(h11.SERVER, 1234))
    spliced = splicing_connection(usual)
    assert spliced is usual.conn and type(spliced) is SplicingConnection
    assert spliced._max_incomplete_event_size == 1234  # the same limit
    conn = h11.Connection(h11.SERVER)
    del conn._max_incomplete_event_size  # as if a release renamed it
    moved = SimpleNamespace(conn=conn)
    assert splicing_connection(moved) is None and moved.conn is conn
    assert splicing_connection(SimpleNamespace()) is None  # httptools: no `conn`

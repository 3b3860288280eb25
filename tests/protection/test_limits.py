"""Request limits and time limits against a real `pilothouse serve`: a 20 MB chunked upload is
stopped at the limit (the app never holds more), a declared oversized body is refused before
the app runs, too many or too large headers are refused, and a slow route is cut at its time
limit with its handler cancelled — each answered with problem+json and counted."""

from __future__ import annotations

import re
import socket
import threading

import httpx

from tests.protection.conftest import Serve

LIMIT = 2**20  # "1MiB"
CONFIG = """
[protection.limits]
max_body_size = "1MiB"
max_header_size = "4KiB"
max_header_count = 20
routes = [{ path = "/slow", time_limit = "300ms" }, { path = "/upload", time_limit = "30s" }]
"""


def refused(ops_url: str, reason: str) -> float:
    text = httpx.get(f"{ops_url}/metrics").text
    match = re.search(rf'^pilothouse_http_requests_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def raw_request(port: int, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    """Send `head`, then up to `body_chunks` chunked-encoded chunks while a reader thread
    collects the answer: the server may answer and close before the upload ends."""
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:

        def read() -> None:
            try:
                while data := sock.recv(65536):
                    answer.extend(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(head)
        try:
            for _ in range(body_chunks):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if body_chunks:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: expected once it refused the body
        reader.join(timeout=30)
    return bytes(answer)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_chunked_upload_of_20mb_stops_at_the_limit(serve: Serve) -> None:
    service = serve(CONFIG)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw_request(service.app_port, head, body_chunks=320, chunk=b"x" * 65536)  # 20 MiB
    assert status_of(answer) == 413
    assert b"application/problem+json" in answer
    assert refused(service.ops_url, "body_too_large") == 1
    stats = httpx.get(f"{service.app_url}/stats").json()
    assert 0 < stats["upload_bytes"] <= LIMIT  # the app read up to the limit, never past it


def test_upload_under_the_limit_passes(serve: Serve) -> None:
    service = serve(CONFIG)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    answer = raw_request(service.app_port, head, body_chunks=8, chunk=b"x" * 65536)
    assert status_of(answer) == 200
    assert answer.endswith(b'{"received":524288}')


def test_declared_oversized_body_is_refused_before_the_app_runs(serve: Serve) -> None:
    """Only the head is sent: the answer comes without a byte of the body."""
    service = serve(CONFIG)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"
    answer = raw_request(service.app_port, head)
    assert status_of(answer) == 413
    assert b"connection: close" in answer.lower()
    assert httpx.get(f"{service.app_url}/stats").json()["upload_bytes"] == 0


def test_too_many_and_too_large_headers_are_refused(serve: Serve) -> None:
    service = serve(CONFIG)
    many = httpx.get(f"{service.app_url}/client", headers={f"X-Filler-{n}": "1" for n in range(25)})
    assert many.status_code == 431
    assert many.headers["content-type"] == "application/problem+json"
    large = httpx.get(f"{service.app_url}/client", headers={"X-Large": "y" * 5000})
    assert large.status_code == 431
    assert httpx.get(f"{service.app_url}/client", headers={"X-Small": "y" * 1000}).status_code == 200
    assert refused(service.ops_url, "too_many_headers") == 1
    assert refused(service.ops_url, "headers_too_large") == 1


def test_slow_route_is_cut_at_its_time_limit_and_its_handler_cancelled(serve: Serve) -> None:
    service = serve(CONFIG)
    response = httpx.get(f"{service.app_url}/slow", params={"seconds": "60"}, timeout=30)
    assert response.status_code == 504
    body = response.json()
    assert body["title"] == "Gateway Timeout"
    assert body["request_id"] == response.headers["x-request-id"]
    stats = httpx.get(f"{service.app_url}/stats").json()
    assert stats["slow_cancelled"] == 1
    assert stats["slow_finished"] == 0
    assert refused(service.ops_url, "time_limit") == 1
    # Under the limit the route answers; other routes keep the section's generous default.
    assert httpx.get(f"{service.app_url}/slow", params={"seconds": "0"}).status_code == 200


def test_timeout_status_503_and_no_drop_counted(serve: Serve) -> None:
    service = serve(CONFIG + "timeout_status = 503\n")
    response = httpx.get(f"{service.app_url}/slow", params={"seconds": "60"}, timeout=30)
    assert response.status_code == 503
    text = httpx.get(f"{service.ops_url}/metrics").text
    assert "pilothouse_http_requests_dropped_total 0.0" in text  # not a drain drop


def test_refusals_and_unhandled_errors_are_on_the_overview_dashboard() -> None:
    """The overview board queries both protection metrics by their catalog names (the shop
    scrape test in tests/generators/monitoring proves a real scrape has those series)."""
    from pilothouse.catalog import protection as protection_metrics
    from pilothouse.config.model import Config
    from pilothouse.generators.monitoring import alerts, dashboards

    config = Config.model_validate({"service": {"name": "shop"}})
    board = dashboards.boards(config, alerts.plan(config))["overview"].json()
    for spec in (protection_metrics.HTTP_REQUESTS_REFUSED, protection_metrics.HTTP_UNHANDLED_ERRORS):
        assert f"rate({spec.sample_name}{{" in board
    assert "sum by (reason)" in board

"""Client errors on the ops port are a 4xx and one log line, never a traceback or a 500
(issue 14, item 8), against a real `pilothouse serve` with the jobs feature."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, ServeProcess, write_config

TOKEN = "bad-requests-token-0123456789"

CONFIG = """
[service]
name = "svc"
app = "tests.apps.slow:app"
[ops]
admin_token_env = "SVC_ADMIN_TOKEN"
[lifecycle]
pre_stop_delay = "0s"
[jobs]
path = "jobs.sqlite3"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    with ServeProcess(write_config(tmp_path, CONFIG), cwd=ROOT, env={"SVC_ADMIN_TOKEN": TOKEN}) as serving:
        yield serving


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def new_log_lines(server: ServeProcess, before: int) -> list[str]:
    """Lines logged since `before`, after a probe has gone through the same event loop (so any
    task the bad request started has run and logged)."""
    assert httpx.get(f"{server.ops_url}/health").status_code == 200
    return [line for line in server.output.splitlines()[before:] if line.strip()]


def post(path: str, headers: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n"
        f"{headers}\r\n"
    ).encode() + body


def test_a_chunked_body_the_parser_rejects_is_one_400_and_one_line(server: ServeProcess) -> None:
    before = len(server.output.splitlines())
    bad_chunk = b"ZZZ\r\nabc\r\n0\r\n\r\n"  # "ZZZ" is not a hexadecimal chunk size
    answer = exchange(server.ops_port, post("/admin/drain", "Transfer-Encoding: chunked\r\n", bad_chunk))
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    lines = new_log_lines(server, before)
    assert len(lines) == 1 and "Invalid HTTP request received" in lines[0], lines
    # The rejected request did not drain the process.
    assert httpx.get(f"{server.ops_url}/ready").status_code == 200


def test_deeply_nested_json_is_a_400_and_one_line(server: ServeProcess) -> None:
    body = b"[" * 30_000 + b"]" * 30_000  # 60 KB, within the body limit
    before = len(server.output.splitlines())
    answer = exchange(
        server.ops_port,
        post("/admin/jobs", f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n", body),
    )
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"nested too deeply" in answer
    lines = new_log_lines(server, before)
    assert len(lines) == 1 and "POST /admin/jobs" in lines[0] and "400" in lines[0], lines


def test_an_admin_body_over_the_limit_is_a_413(server: ServeProcess) -> None:
    answer = httpx.post(
        f"{server.ops_url}/admin/jobs",
        content=b" " * (64 * 1024 + 1),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 413
    assert "Traceback" not in server.output

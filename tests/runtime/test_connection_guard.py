"""Idle and slow connections cannot starve the process (issue 14, item 1): a real `pilothouse
serve` subprocess with a lowered open-file limit, so a few hundred loopback sockets reach it.

Before the guard: sockets that sent nothing, or headers without the final blank line, stayed
open for ever; enough of them used every descriptor and the ops port answered no probe, while
asyncio logged a traceback for every failed accept().
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.helpers import ROOT, ServeProcess, write_config

NOFILE = 256
"""The served process's open-file limit: app cap = 256 - ops cap (64) - 128 others = 64."""

CONFIG = """
[service]
name = "svc"
app = "tests.apps.slow:app"
header_timeout = "{header}"
idle_timeout = "{idle}"
[ops]
header_timeout = "{header}"
idle_timeout = "{idle}"
[lifecycle]
pre_stop_delay = "0s"
"""


def config(tmp_path: Path, header: str = "60s", idle: str = "60s") -> Path:
    return write_config(tmp_path, CONFIG.format(header=header, idle=idle))


@contextlib.contextmanager
def sockets(port: int, count: int, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """`count` connections to `port` that send `first_bytes` (or nothing) and then wait."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            if first_bytes:
                sock.sendall(first_bytes)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed `sock` (EOF or reset), without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def wait_closed(sock: socket.socket, limit: float = 15) -> bool:
    """Block until the server closes `sock`; False if it is still open after `limit` seconds."""
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def wait_for(predicate: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def probes_answer(server: ServeProcess) -> bool:
    answers = [httpx.get(f"{server.ops_url}{path}", timeout=5) for path in ("/health", "/ready")]
    return all(answer.status_code == 200 for answer in answers)


def test_a_flood_of_idle_connections_cannot_starve_the_probes(tmp_path: Path) -> None:
    """400 sockets (half idle, half with unfinished headers) against a limit of 256 descriptors:
    the app port keeps its cap (64 here), closes the rest at once, and the probes answer."""
    with ServeProcess(config(tmp_path), cwd=ROOT, nofile=NOFILE) as server:
        unfinished = b"GET / HTTP/1.1\r\n"
        with sockets(server.app_port, 200) as idle, sockets(server.app_port, 200, unfinished) as slow:
            flood = idle + slow
            wait_for(lambda: sum(map(closed_by_server, flood)) >= len(flood) - 64)
            for _ in range(5):
                assert probes_answer(server)
            assert sum(map(closed_by_server, flood)) == len(flood) - 64  # the cap holds 64
        # The flood gone, the app port serves again.
        wait_for(lambda: httpx.get(f"{server.app_url}/hello", timeout=5).status_code == 200)
    output = server.output
    assert "max_connections 1000 lowered to 64: the open-file limit is 256" in output
    assert "Traceback" not in output and "out of system resource" not in output
    refusals = [line for line in output.splitlines() if "closing new ones at once" in line]
    assert len(refusals) == 1, refusals  # 336 refused connections, one log line


def test_idle_and_slow_connections_are_closed_on_both_ports(tmp_path: Path) -> None:
    """On each port: 50 connections that send nothing, 50 with headers lacking the blank line,
    one trickling a header byte every 0.2 s (never idle, never done), one idle after a keep-alive
    response. The server closes every one of them; complete requests still work; the closures
    are a few log lines, not one each."""
    unfinished = b"GET /health HTTP/1.1\r\n"
    with ServeProcess(config(tmp_path, header="1s", idle="1s"), cwd=ROOT) as server:
        for port in (server.app_port, server.ops_port):
            with sockets(port, 50) as idle, sockets(port, 50, unfinished) as slow:
                trickling = slow[0]
                for _ in range(20):  # one header byte every 0.2 s
                    with contextlib.suppress(OSError):
                        trickling.sendall(b"X")
                    if closed_by_server(trickling):
                        break
                    time.sleep(0.2)
                with sockets(port, 1) as (kept,):
                    kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert kept.recv(4096).startswith(b"HTTP/1.1 ")
                    for sock in [*idle, *slow, kept]:
                        assert closed_by_server(sock) or wait_closed(sock)
        assert httpx.get(f"{server.app_url}/hello").status_code == 200
        assert probes_answer(server)
    late = "sent no complete request headers within 1s"
    lines = [line for line in server.output.splitlines() if late in line]
    assert 2 <= len(lines) <= 4, lines  # 100 closures: a first line per port, then a count per 10 s


def test_failed_accepts_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    """With every descriptor taken (the app holds them), asyncio cannot accept on either port and
    retries each second; that is one log line without a traceback, not a traceback per retry.
    On asyncio's loop: uvloop (libuv) never reports these, it accepts and closes such
    connections at once (its "EMFILE trick"), so there is nothing to log there."""
    # The client keeps its connection (the only one the app can use while it holds every descriptor).
    keep = httpx.Limits(keepalive_expiry=60)
    on_asyncio = ("--loop", "asyncio")
    with (
        ServeProcess(config(tmp_path), cwd=ROOT, nofile=NOFILE, args=on_asyncio) as server,
        httpx.Client(limits=keep) as app,
    ):
        held = app.get(f"{server.app_url}/hog", timeout=5).json()["held"]
        assert held > 0
        with sockets(server.ops_port, 1) as (probe,), sockets(server.app_port, 1):
            wait_for(lambda: "cannot accept connections" in server.output)
            time.sleep(3)  # the exhaustion lasts: asyncio retries each port every second meanwhile
            assert app.get(f"{server.app_url}/release", timeout=5).json()["released"] == held
            probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            probe.settimeout(10)
            assert probe.recv(4096).startswith(b"HTTP/1.1 200 ")  # accepted once descriptors are back
    output = server.output
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if "cannot accept connections" in line]
    assert len(failures) == 1, failures
    assert "Too many open files" in failures[0]


def test_the_soft_open_file_limit_is_raised_before_the_cap_is_lowered() -> None:
    """Containers and systemd often start processes with a soft limit of 1024 and a far higher
    hard one: the runtime raises the soft limit to what the caps need instead of lowering them."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "from pilothouse.runtime.connection_guard import fd_cap\n"
        "print(fd_cap(1000, 192), resource.getrlimit(resource.RLIMIT_NOFILE)[0], fd_cap(5000, 192))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1000", "1192", "3904"]  # 4096 - 192: only the hard limit lowers it

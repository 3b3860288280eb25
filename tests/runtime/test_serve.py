"""`pilothouse serve` as a real subprocess: readiness follows a real PostgreSQL, and SIGTERM
drains under load with real signals."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pilothouse.config import load_config
from tests.helpers import ROOT, ServeProcess, write_config
from tests.runtime.tcp_gate import TcpGate

BASE = """
[service]
name = "svc"
app = "tests.apps.slow:app"
[ops]
admin_token_env = "SVC_ADMIN_TOKEN"
[probes]
check_timeout = "{timeout}"
cache_ttl = "{ttl}"
[lifecycle]
pre_stop_delay = "{pre_stop}"
drain_timeout = "{drain}"
flush_timeout = "1s"
"""


def config(
    tmp_path: Path,
    *,
    pre_stop: str = "1s",
    drain: str = "5s",
    ttl: str = "1s",
    timeout: str = "1s",
    extra: str = "",
) -> Path:
    return write_config(
        tmp_path, BASE.format(pre_stop=pre_stop, drain=drain, ttl=ttl, timeout=timeout) + extra
    )


def wait_for(predicate: object, timeout: float = 10, interval: float = 0.05) -> float:
    """Poll until predicate() is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def gate() -> Iterator[TcpGate]:
    g = TcpGate(5432)
    g.set("forward")
    yield g
    g.close()


def ready_status(server: ServeProcess) -> int:
    return httpx.get(f"{server.ops_url}/ready", timeout=5).status_code


def test_readiness_follows_postgres(tmp_path: Path, gate: TcpGate, postgres_url: str) -> None:
    extra = f"""
[[checks]]
name = "db"
kind = "postgres"
url = "postgresql://postgres@127.0.0.1:{gate.port}/test"
"""
    with ServeProcess(config(tmp_path, extra=extra, ttl="1s", timeout="1s"), cwd=ROOT) as server:
        wait_for(lambda: ready_status(server) == 200)
        # Refused connections: 503 within one TTL (+ the check's own time).
        gate.set("closed")
        took = wait_for(lambda: ready_status(server) == 503)
        assert took <= 1.0 + 1.0 + 0.5
        body = httpx.get(f"{server.ops_url}/ready").json()
        assert body["checks"]["db"]["status"] == "fail"
        assert "postgres@" not in body["checks"]["db"]["error"]  # no DSN in a body
        gate.set("forward")
        wait_for(lambda: ready_status(server) == 200, timeout=3)
        # A port that listens but never answers: the check times out, the probe does not hang.
        gate.set("blackhole")
        start = time.monotonic()
        took = wait_for(lambda: ready_status(server) == 503)
        assert time.monotonic() - start < 4
        body = httpx.get(f"{server.ops_url}/ready").json()
        assert (
            "timed out after 1s" in body["checks"]["db"]["error"]
            or "previous run" in body["checks"]["db"]["error"]
        )
        gate.set("forward")
        wait_for(lambda: ready_status(server) == 200, timeout=5)


def connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_under_load_drains_gracefully(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    server = ServeProcess(
        config(tmp_path, pre_stop="1s", drain="5s"), cwd=ROOT, env={"SHUTDOWN_MARKER": str(marker)}
    ).start()
    n = 8
    with concurrent.futures.ThreadPoolExecutor(n + 2) as pool:
        inflight = [
            pool.submit(httpx.get, f"{server.app_url}/slow?seconds=2.5", timeout=30) for _ in range(n)
        ]
        wait_for(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == n)
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        # Readiness fails at once.
        wait_for(lambda: ready_status(server) == 503, timeout=0.5, interval=0.01)
        # Still serving during the pre-stop delay (load balancers have not noticed yet).
        assert httpx.get(f"{server.app_url}/hello", timeout=2).status_code == 200
        # After the pre-stop delay (and not before it) new connections are refused.
        wait_for(lambda: connect_refused(server.app_port), timeout=5, interval=0.02)
        assert time.monotonic() - sent >= 1.0
        # Every in-flight request completes with 200.
        assert [f.result().status_code for f in inflight] == [200] * n
        code = server.wait(timeout=15)
        elapsed = time.monotonic() - sent
    assert code == 0, server.output
    assert elapsed < 1 + 5 + 1 + 1  # pre_stop + drain + flush + margin
    assert server.proc is not None
    assert marker.read_text() == f"lifespan shutdown ran in {server.proc.pid}\n"
    assert "cut" not in server.output


def test_requests_beyond_the_drain_timeout_are_cut_and_counted(tmp_path: Path) -> None:
    server = ServeProcess(config(tmp_path, pre_stop="200ms", drain="1s"), cwd=ROOT).start()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stuck = [pool.submit(httpx.get, f"{server.app_url}/slow?seconds=30", timeout=30) for _ in range(3)]
        wait_for(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == 3)
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.wait(timeout=15)
        elapsed = time.monotonic() - sent
        outcomes = []
        for future in stuck:
            try:
                outcomes.append(future.result().status_code)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
    # Cut before their response started: told to retry elsewhere, not a generic 500.
    assert outcomes == [503, 503, 503]
    assert "Traceback" not in server.output
    assert code == 0
    assert elapsed < 0.2 + 1 + 1 + 1.5
    assert "drain timeout: 3 request(s) cut" in server.output


def assert_second_signal_exits_at_once(server: ServeProcess) -> None:
    """SIGTERM starts the drain (readiness 503); SIGINT then exits within 1.5 s with 128 + 2."""
    server.signal(signal.SIGTERM)
    wait_for(lambda: ready_status(server) == 503)
    start = time.monotonic()
    server.signal(signal.SIGINT)
    code = server.wait(timeout=5)
    assert time.monotonic() - start < 1.5
    assert code == 128 + signal.SIGINT


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    server = ServeProcess(config(tmp_path, pre_stop="10s", drain="10s"), cwd=ROOT).start()
    assert_second_signal_exits_at_once(server)


def test_idle_sigterm_exit_time_is_pre_stop_bound(tmp_path: Path) -> None:
    """With nothing in flight the drain ends at once: the exit comes after the pre-stop wait,
    not after the drain timeout. No stopwatch (a busy machine stretches any bound): the drain
    timeout is so long that waiting it out would overrun the wait below."""
    server = ServeProcess(config(tmp_path, pre_stop="500ms", drain="120s"), cwd=ROOT).start()
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0


def test_the_ops_port_keeps_its_date_header_current(tmp_path: Path) -> None:
    """The ops port's server ticks once a second, not ten times (`OpsServer`): its Date header
    still moves on with the clock, and the process still stops cleanly with that loop."""
    with ServeProcess(config(tmp_path, pre_stop="0s"), cwd=ROOT) as server:
        first = httpx.get(f"{server.ops_url}/livez").headers["date"]
        wait_for(lambda: httpx.get(f"{server.ops_url}/livez").headers["date"] != first, timeout=5)
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def test_ports_in_use_give_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ServeProcess(config(tmp_path), cwd=ROOT, app_port=port)
        with pytest.raises(RuntimeError, match="exited with 1"):
            server.start()
    assert f"cannot listen on 127.0.0.1:{port} for the app port" in server.output
    assert "Traceback" not in server.output


TOKEN = "tok-5d41402abc4b2a76b9719d911017c592"  # strong enough for the startup check


def test_admin_drain_over_http(tmp_path: Path) -> None:
    with ServeProcess(config(tmp_path), cwd=ROOT, env={"SVC_ADMIN_TOKEN": TOKEN}) as server:
        wait_for(lambda: ready_status(server) == 200)
        assert httpx.post(f"{server.ops_url}/admin/drain").status_code == 401
        assert (
            httpx.post(f"{server.ops_url}/admin/drain", headers={"authorization": "Bearer bad"}).status_code
            == 403
        )
        ok = httpx.post(f"{server.ops_url}/admin/drain", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ready_status(server) == 503
        assert httpx.get(f"{server.app_url}/hello").status_code == 200  # drained, still serving
        httpx.post(f"{server.ops_url}/admin/undrain", headers={"authorization": f"Bearer {TOKEN}"})
        assert ready_status(server) == 200


async def test_bound_sockets_keep_tcp_nodelay() -> None:
    """Sockets bound by Pilothouse must keep asyncio's TCP_NODELAY on accepted connections:
    without it every keep-alive response waits for a delayed ACK (~40 ms)."""
    import asyncio

    from pilothouse.runtime.server import bind

    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    sock = bind("127.0.0.1", 0, "app")
    server = await asyncio.start_server(on_connect, sock=sock)
    reader, writer = await asyncio.open_connection(*sock.getsockname())
    await reader.read()
    writer.close()
    server.close()
    assert accepted and accepted[0] != 0


def test_a_hung_check_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """A sync check stuck for 30 s (a hung driver) must not stop the process exiting after SIGTERM."""
    extra = '\n[[checks]]\nname = "stuck"\nkind = "python"\ntarget = "tests.runtime.test_checks:hangs"\n'
    server = ServeProcess(config(tmp_path, pre_stop="0s", extra=extra, timeout="200ms"), cwd=ROOT).start()
    assert ready_status(server) == 503  # the stuck check fails within its timeout
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0, server.output


def test_fractional_drain_timeout_is_honoured(tmp_path: Path) -> None:
    """drain_timeout = "2500ms" lets a 1.8 s request finish (it used to be rounded to 2 s and
    1.5 s to 2 s; now the value is passed to uvicorn exactly)."""
    server = ServeProcess(config(tmp_path, pre_stop="0s", drain="2500ms"), cwd=ROOT).start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        request = pool.submit(httpx.get, f"{server.app_url}/slow?seconds=2.2", timeout=30)
        wait_for(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == 1)
        server.signal(signal.SIGTERM)
        assert request.result().status_code == 200
    assert server.wait(timeout=10) == 0
    assert "cut" not in server.output


def test_a_startup_that_never_finishes_is_an_error(tmp_path: Path) -> None:
    path = config(tmp_path, extra="")
    path.write_text(path.read_text().replace("flush_timeout", 'startup_timeout = "1s"\nflush_timeout'))
    server = ServeProcess(path, cwd=ROOT, env={"STARTUP_DELAY": "30"}).start(wait_ready=False)
    assert ready_status(server) == 503  # liveness answers, readiness says starting
    assert server.wait(timeout=10) == 1
    assert "the app did not finish starting within 1s" in server.output


def test_sigterm_during_a_slow_startup_exits_within_the_budget(tmp_path: Path) -> None:
    """A 20 s app startup, budget 2 + 4 + 1 = 7 s: SIGTERM cancels the startup (it used to run to
    its end, 20.3 s) and the process exits 0 within the budget."""
    path = config(tmp_path, pre_stop="2s", drain="4s")
    budget = load_config(path).lifecycle.shutdown_budget
    assert budget == 7
    server = ServeProcess(path, cwd=ROOT, env={"STARTUP_DELAY": "20"}).start(wait_ready=False)
    assert httpx.get(f"{server.ops_url}/startup").status_code == 503  # still starting
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=budget) == 0, server.output
    assert "startup cancelled: a shutdown signal arrived" in server.output
    assert "Traceback" not in server.output and "lifespan' protocol appears unsupported" not in server.output


def test_a_shutdown_stuck_in_the_app_is_cut_at_the_hard_exit(tmp_path: Path) -> None:
    """The app's lifespan shutdown blocks the event loop for 60 s: the process still exits, with
    status 1 and one line, 3 s past its budget (inside the grace period's 5 s margin)."""
    path = config(tmp_path, pre_stop="0s", drain="1s")
    lifecycle = load_config(path).lifecycle
    assert lifecycle.hard_exit_after < lifecycle.stop_timeout_seconds
    server = ServeProcess(path, cwd=ROOT, env={"SHUTDOWN_BLOCK": "60"}).start()
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=lifecycle.stop_timeout_seconds) == 1
    assert f"shutdown did not finish within {lifecycle.hard_exit_after:g}s of the signal" in server.output

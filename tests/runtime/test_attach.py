"""`pilothouse.attach(app)` under plain `uvicorn`: the ops port follows the ASGI lifespan."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ROOT, ServeProcess, free_port
from tests.runtime.test_serve import config, connect_refused, wait_for


def test_attach_under_uvicorn(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    server = start_uvicorn(tmp_path, env={"SHUTDOWN_MARKER": str(marker)})
    try:
        ops = server.ops_url
        assert httpx.get(f"http://127.0.0.1:{server.app_port}/hello").text == "hello"
        status = httpx.get(f"{ops}/status").json()
        assert status["state"] == "ready" and status["service"] == "svc"
        assert "http_server_request_duration_seconds_count" in httpx.get(f"{ops}/metrics").text
        assert server.proc is not None
        server.signal(signal.SIGTERM)
        start = time.monotonic()
        server.wait(timeout=15)
        # uvicorn (the host server here) re-raises SIGTERM after its graceful shutdown.
        assert server.proc.returncode in (0, -signal.SIGTERM), server.output
        assert "Application shutdown complete." in server.output
        assert time.monotonic() - start < 5
        assert marker.exists()
        try:
            httpx.get(f"{ops}/health", timeout=1)
            raise AssertionError("the ops port is still open after shutdown")
        except httpx.ConnectError:
            pass
    finally:
        server.stop()


async def test_attach_answers_lifespan_for_an_app_that_ignores_it(tmp_path: Path) -> None:
    """A raw ASGI app that returns on lifespan scopes (without answering) still gets its ops
    server started and stopped with the host server's lifespan."""
    import asyncio

    import pilothouse
    from pilothouse.config import config_from_dict

    async def bare(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return

    outbox: list[str] = []
    failures: list[str] = []

    async def send(message: dict[str, str]) -> None:
        outbox.append(message["type"])
        failures.append(message.get("message", ""))

    for _ in range(5):  # a port free when picked may be taken before the ops server binds it
        outbox.clear()
        failures.clear()
        ops_port = free_port()
        ops = {"host": "127.0.0.1", "port": ops_port}
        app = pilothouse.attach(bare, config_from_dict({"service": {"name": "svc"}, "ops": ops}))
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))  # type: ignore[arg-type]
        for _ in range(100):
            if outbox:
                break
            await asyncio.sleep(0.02)
        if outbox != ["lifespan.startup.failed"] or "Address already in use" not in failures[0]:
            break
        await asyncio.wait_for(task, 5)
    assert outbox == ["lifespan.startup.complete"]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{ops_port}/ready")).status_code == 200
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 5)
    assert outbox == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


APP_PORT_TAKEN = "error while attempting to bind on address"  # uvicorn's line
OPS_PORT_TAKEN = "for the ops port: Address already in use"  # Pilothouse's line


def uvicorn(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
    """`python -m uvicorn tests.apps.attached:app --port P ARGS` as a user runs it (not started).
    uvicorn binds the app port and Pilothouse the ops port, each a port that was free a moment
    ago: the callers retry on new ports when another process took one meanwhile."""
    path = config(tmp_path)
    process = ServeProcess(path, env={"PILOTHOUSE_CONFIG": str(path), **(env or {})})
    process.cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.apps.attached:app",
        "--port",
        str(process.app_port),
        *args,
    ]
    process.cwd = ROOT
    return process


def start_uvicorn(tmp_path: Path, env: dict[str, str] | None = None) -> ServeProcess:
    """uvicorn with the attached app, ready (retried on new ports when one was taken)."""
    for _ in range(3):
        process = uvicorn(tmp_path, env=env)
        try:
            return process.start()
        except RuntimeError:
            if APP_PORT_TAKEN not in process.output and OPS_PORT_TAKEN not in process.output:
                raise
    raise AssertionError("the ports kept being taken")


def run_uvicorn(tmp_path: Path, *args: str) -> ServeProcess:
    """uvicorn with the attached app, run until it exits by itself (retried on new ports when
    the app port was taken)."""
    for _ in range(3):
        process = uvicorn(tmp_path, *args)
        process.launch().wait(timeout=60)
        if APP_PORT_TAKEN not in process.output:
            break
    return process


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_readiness_fails_when_uvicorn_starts_draining(tmp_path: Path) -> None:
    """uvicorn closes its listener and waits for open requests before the lifespan shutdown:
    readiness must fail at the signal, while the app port already refuses and a request is still
    being served, not after (and uvicorn's `color_message`, with ANSI codes, stays out of the
    JSON lines)."""
    server = start_uvicorn(tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"http://127.0.0.1:{server.app_port}/slow?seconds=4", timeout=20)
            wait_for(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == 1)
            server.signal(signal.SIGTERM)
            wait_for(lambda: connect_refused(server.app_port))
            assert not slow.done()  # uvicorn is draining
            ready_now = httpx.get(f"{server.ops_url}/ready")
            assert ready_now.status_code == 503, ready_now.text
            assert httpx.get(f"{server.ops_url}/status").json()["state"] == "draining"
            assert slow.result().status_code == 200  # the request in flight was served
        server.wait(timeout=15)
        lines = json_lines(server.output)
        assert any(line["message"].startswith("Started server process") for line in lines)
        assert "\x1b" not in server.output and "\\u001b" not in server.output
        assert not any("color_message" in line for line in lines)
    finally:
        server.stop()


def test_several_uvicorn_workers_get_one_clear_error(tmp_path: Path) -> None:
    """`uvicorn --workers 2`: the first worker owns the ops port, the second fails its startup
    with one line naming the port and the alternatives (no traceback), and uvicorn stops."""
    server = run_uvicorn(tmp_path, "--workers", "2")
    try:
        out = server.output
        assert "Traceback" not in out, out
        errors = [line for line in json_lines(out) if line["level"] == "error"]
        (error,) = [line for line in errors if "ops port" in line["message"]]
        message = error["message"]
        assert f"127.0.0.1:{server.ops_port} for the ops port" in message
        assert "pilothouse serve --workers N" in message
        assert out.count("Application startup complete.") == 1, out
        assert "failed to start, stopping the parent process" in out  # uvicorn's reaction to exit 3
    finally:
        server.stop()

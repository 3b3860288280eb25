"""`pilothouse.attach(app)` under plain `uvicorn`: the ops port follows the ASGI lifespan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import ROOT, free_port
from tests.runtime.test_serve import config, wait_for


def test_attach_under_uvicorn(tmp_path: Path) -> None:
    app_port, ops_port = free_port(), free_port()
    marker = tmp_path / "shutdown.marker"
    env = {
        **os.environ,
        "PILOTHOUSE_CONFIG": str(config(tmp_path)),
        "PILOTHOUSE_OPS__HOST": "127.0.0.1",
        "PILOTHOUSE_OPS__PORT": str(ops_port),
        "SHUTDOWN_MARKER": str(marker),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.apps.attached:app", "--port", str(app_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ops = f"http://127.0.0.1:{ops_port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{ops}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=15)
        assert httpx.get(f"http://127.0.0.1:{app_port}/hello").text == "hello"
        status = httpx.get(f"{ops}/status").json()
        assert status["state"] == "ready" and status["service"] == "svc"
        assert "http_server_request_duration_seconds_count" in httpx.get(f"{ops}/metrics").text
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        out, _ = proc.communicate(timeout=15)
        # uvicorn (the host server here) re-raises SIGTERM after its graceful shutdown.
        assert proc.returncode in (0, -signal.SIGTERM), out
        assert "Application shutdown complete." in out
        assert time.monotonic() - start < 5
        assert marker.exists()
        try:
            httpx.get(f"{ops}/health", timeout=1)
            raise AssertionError("the ops port is still open after shutdown")
        except httpx.ConnectError:
            pass
    finally:
        proc.kill()


async def test_attach_answers_lifespan_for_an_app_that_ignores_it(tmp_path: Path) -> None:
    """A raw ASGI app that returns on lifespan scopes (without answering) still gets its ops
    server started and stopped with the host server's lifespan."""
    import asyncio

    import pilothouse
    from pilothouse.config import config_from_dict

    async def bare(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return

    ops_port = free_port()
    config = config_from_dict({"service": {"name": "svc"}, "ops": {"host": "127.0.0.1", "port": ops_port}})
    app = pilothouse.attach(bare, config)
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: list[str] = []

    async def send(message: dict[str, str]) -> None:
        outbox.append(message["type"])

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))  # type: ignore[arg-type]
    for _ in range(100):
        if outbox:
            break
        await asyncio.sleep(0.02)
    assert outbox == ["lifespan.startup.complete"]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{ops_port}/ready")).status_code == 200
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 5)
    assert outbox == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

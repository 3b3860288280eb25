"""A uvicorn Server that leaves signals to Pilothouse.

uvicorn installs its own SIGTERM handler and re-raises the signal after shutdown; Pilothouse
needs the signal to start its own phased shutdown and to exit 0, so the capture is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server without its signal capture (Pilothouse's lifecycle handles signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def ops_server(app: Any, host: str, port: int) -> Server:
    """A quiet uvicorn server for the ops app (no lifespan, no access log)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    return Server(config)


async def stop_server(server: Server, main_loop: asyncio.Task[None], sock: socket.socket) -> None:
    """Stop a server whose `main_loop()` runs in `main_loop`: end the loop, then close its
    connections and `sock` (the ops port's last step in serve, the supervisor and attach)."""
    server.should_exit = True
    await main_loop
    await server.shutdown(sockets=[sock])

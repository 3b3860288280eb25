"""A uvicorn Server that leaves signals to Pilothouse, and the uvicorn settings of each port.

uvicorn installs its own SIGTERM handler and re-raises the signal after shutdown; Pilothouse
needs the signal to start its own phased shutdown and to exit 0, so the capture is disabled.
Both ports get the connection guard (`connection_guard`) with their section's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from pilothouse.config.ops import OpsConfig
from pilothouse.config.service import ServiceConfig
from pilothouse.runtime.connection_guard import Limits, guarded_protocol


class Server(uvicorn.Server):
    """uvicorn's server without its signal capture (Pilothouse's lifecycle handles signals), and
    with its shutdown in the phases of `pilothouse.runtime.shutdown`: `stop_accepting`, `drain`
    (uvicorn's shutdown without its last step) and `lifespan_shutdown` (that last step)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def stop_accepting(self, main_loop: asyncio.Task[None], sockets: list[socket.socket]) -> None:
        """End the server's `main_loop()` task and close its listening sockets."""
        self.should_exit = True
        await main_loop
        for server in self.servers:
            server.close()
        for sock in sockets:
            sock.close()

    async def drain(self, sockets: list[socket.socket]) -> None:
        """uvicorn's shutdown up to the app's lifespan shutdown: ask open connections to close,
        wait for them within `timeout_graceful_shutdown`, cancel the requests still running."""
        lifespan = self.lifespan
        self.lifespan = _NoLifespan()
        try:
            await self.shutdown(sockets=sockets)
        finally:
            self.lifespan = lifespan

    async def lifespan_shutdown(self) -> None:
        """The app's lifespan shutdown, as uvicorn's shutdown ends (skipped on a forced exit)."""
        if not self.force_exit:
            await self.lifespan.shutdown()


class _NoLifespan:
    async def shutdown(self) -> None:
        return None


def port_limits(section: ServiceConfig | OpsConfig, port: str, max_connections: int) -> dict[str, Any]:
    """uvicorn.Config keywords enforcing a port's timeouts and connection cap."""
    limits = Limits(port, section.header_timeout, section.idle_timeout, max_connections)
    # uvicorn types timeout_keep_alive int, but arms its timer with a float fine.
    return {"http": guarded_protocol(limits), "timeout_keep_alive": section.idle_timeout}


def ops_server(app: Any, ops: OpsConfig) -> Server:
    """A quiet uvicorn server for the ops app (no lifespan, no access log)."""
    config = uvicorn.Config(
        app,
        host=ops.host,
        port=ops.port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
        **port_limits(ops, "ops", ops.max_connections),
    )
    return Server(config)


async def stop_server(server: Server, main_loop: asyncio.Task[None], sock: socket.socket) -> None:
    """Stop a server whose `main_loop()` runs in `main_loop`: end the loop, then close its
    connections and `sock` (the ops port's last step in serve, the supervisor and attach)."""
    server.should_exit = True
    await main_loop
    await server.shutdown(sockets=[sock])

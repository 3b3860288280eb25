"""`attach(app)`: Pilothouse inside a server you run yourself (uvicorn, gunicorn+uvicorn workers).

The returned ASGI app starts the ops server when the host server runs the ASGI lifespan startup,
marks the process ready once the app's own startup completed, and on lifespan shutdown fails
readiness, flushes telemetry and stops the ops server. The host server owns signals and the
drain of connections; pair it with a preStop delay (the generated Deployment has one).
"""

from __future__ import annotations

import asyncio
import logging

from pilothouse.config.loader import load_config
from pilothouse.config.model import Config
from pilothouse.runtime.asgi import ASGIApp, Message, Receive, Scope, Send
from pilothouse.runtime.features import install_all
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import bind, start_server
from pilothouse.runtime.uvicorn_server import Server, ops_server, stop_server

log = logging.getLogger("pilothouse.attach")


class AttachedApp:
    """The user's app wrapped with Pilothouse middleware plus an ops server tied to lifespan."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.runtime = runtime
        self.app = runtime.wrap(app)
        self._ops: Server | None = None
        self._ops_task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await self._lifespan(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_handles_lifespan = False
        received: list[str] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal app_handles_lifespan
            app_handles_lifespan = True
            if message["type"] == "lifespan.startup.complete":
                await self.start()
            elif message["type"] == "lifespan.shutdown.complete":
                await self.stop()
            await send(message)

        async def receive_wrapper() -> Message:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "lifespan.shutdown":
                self.runtime.lifecycle.begin_shutdown("lifespan shutdown")
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if app_handles_lifespan:
                raise
        if app_handles_lifespan:
            return
        # The app does not speak lifespan (it raised, or returned without answering): answer
        # for it, so the ops server still follows the host server's lifecycle.
        if "lifespan.startup" not in received:
            await receive()
        await self.start()
        await send({"type": "lifespan.startup.complete"})
        if "lifespan.shutdown" not in received:
            await receive()
        self.runtime.lifecycle.begin_shutdown("lifespan shutdown")
        await self.stop()
        await send({"type": "lifespan.shutdown.complete"})

    async def start(self) -> None:
        """Start the ops server and mark ready (idempotent)."""
        if self._ops is None:
            ops = self.runtime.config.ops
            self._ops = ops_server(self.runtime.ops_app(), ops)
            self._ops_socket = bind(ops.host, ops.port, "ops")
            await start_server(self._ops, self._ops_socket)
            self._ops_task = asyncio.create_task(self._ops.main_loop())
            self.runtime.start_checks()
            await self.runtime.run_start_hooks()
        self.runtime.lifecycle.mark_ready()

    async def stop(self) -> None:
        await self.runtime.run_drain_hooks()
        await self.runtime.flush()
        self.runtime.lifecycle.mark_stopped()
        if self._ops is not None and self._ops_task is not None:
            await stop_server(self._ops, self._ops_task, self._ops_socket)
            self._ops = None


def attach(app: ASGIApp, config: Config | str | None = None) -> AttachedApp:
    """Wrap an ASGI app with Pilothouse, configured from `config` (a Config, a path, or
    `pilothouse.toml` / $PILOTHOUSE_CONFIG when omitted)."""
    if not isinstance(config, Config):
        config = load_config(config)
    runtime = Runtime(config)
    install_all(runtime)
    return AttachedApp(app, runtime)

"""`attach(app)`: Pilothouse inside a server you run yourself (uvicorn, gunicorn+uvicorn workers).

The returned ASGI app starts the ops server when the host server runs the ASGI lifespan startup,
marks the process ready once the app's own startup completed, fails readiness as soon as the host
server is told to stop (before it drains), and on lifespan shutdown flushes telemetry and stops
the ops server. The host server owns signals and the drain of connections; pair it with a preStop
delay (the generated Deployment has one). One ops port per process: several host-server workers
(`uvicorn --workers N`, `gunicorn -w N`) would each open it, so every worker after the first
fails its startup with one line saying so (use `pilothouse serve --workers N` instead).
"""

from __future__ import annotations

import logging

from pilothouse.asgi import ASGIApp, Message, Receive, Scope, Send, direct_call
from pilothouse.config.loader import load_config
from pilothouse.config.model import Config
from pilothouse.errors import PilothouseError
from pilothouse.features import install_all
from pilothouse.runtime.ops_port import OpsPort
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.shutdown import Deadlines, Steps, run_shutdown
from pilothouse.runtime.signals import HostSignals

log = logging.getLogger("pilothouse.attach")


class AttachedApp:
    """The user's app wrapped with Pilothouse middleware plus an ops server tied to lifespan."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.runtime = runtime
        self.app = runtime.wrap(app)
        self._serve = direct_call(self.app)  # the stack's bound `__call__`: no C slot a request
        self._ops = OpsPort(runtime)
        self._host_signals: HostSignals | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._serve(scope, receive, send)
            return
        await self._lifespan(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_handles_lifespan = False
        failed = False  # Pilothouse's startup failed: the host server was told, the app is unwound
        received: list[str] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal app_handles_lifespan, failed
            app_handles_lifespan = True
            if message["type"] == "lifespan.startup.complete":
                message = await self._started()
                failed = message["type"] == "lifespan.startup.failed"
            elif failed:  # the app's answer to the shutdown below: the host server is done
                return
            elif message["type"] == "lifespan.shutdown.complete":
                await self.stop()
            await send(message)

        async def receive_wrapper() -> Message:
            if failed:
                # Let the app run its own shutdown (close what its startup opened) instead of
                # waiting for a host server that is exiting, whose cancellation would end in a
                # traceback in the log.
                return {"type": "lifespan.shutdown"}
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
        started = await self._started()
        await send(started)
        if started["type"] == "lifespan.startup.failed":
            return
        if "lifespan.shutdown" not in received:
            await receive()
        self.runtime.lifecycle.begin_shutdown("lifespan shutdown")
        await self.stop()
        await send({"type": "lifespan.shutdown.complete"})

    async def _started(self) -> Message:
        """The lifespan message answering the host server's startup: complete, or failed with
        one line (no traceback) when Pilothouse cannot start, e.g. the ops port is taken."""
        try:
            await self.start()
        except PilothouseError as exc:  # the host server logs the message (uvicorn: at error)
            return {"type": "lifespan.startup.failed", "message": f"pilothouse: {exc}"}
        return {"type": "lifespan.startup.complete"}

    async def start(self) -> None:
        """Start the ops server and mark ready (idempotent)."""
        if not self._ops.serving:
            try:
                await self._ops.start()
            except PilothouseError as exc:
                raise type(exc)(
                    f"{exc}. Under attach every host-server process opens the ops port itself: with "
                    "several workers (uvicorn --workers, gunicorn -w) only the first can, so run one "
                    "worker per process and scale with replicas, or use `pilothouse serve --workers "
                    "N`, whose supervisor owns the ops port"
                ) from None
            self._host_signals = HostSignals.follow(self.runtime.lifecycle)
            self.runtime.start_checks()
            await self.runtime.run_start_hooks()
        self.runtime.lifecycle.mark_ready()

    async def stop(self) -> None:
        """The shutdown sequence (`pilothouse.runtime.shutdown`) from the feature drain on: the
        host server failed readiness (through `HostSignals`), closed its socket, drained its
        connections and ran the app's lifespan shutdown before it calls this."""
        if self._host_signals is not None:
            self._host_signals.restore()
            self._host_signals = None
        steps = Steps(
            feature_drain=self.runtime.run_drain_hooks, flush=self.runtime.flush, stop_ops=self._ops.stop
        )
        await run_shutdown(
            self.runtime.lifecycle,
            steps,
            Deadlines.of(self.runtime.config.lifecycle),
            reason="lifespan shutdown",
        )


def attach(app: ASGIApp, config: Config | str | None = None) -> AttachedApp:
    """Wrap an ASGI app with Pilothouse, configured from `config` (a Config, a path, or
    `pilothouse.toml` / $PILOTHOUSE_CONFIG when omitted)."""
    if not isinstance(config, Config):
        config = load_config(config)
    runtime = Runtime(config)
    install_all(runtime)
    return AttachedApp(app, runtime)

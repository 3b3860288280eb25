"""`pilothouse serve` in one process: the app and the ops app on one event loop.

Reads like uvicorn's server: `startup()` -> `main_loop()` -> `shutdown()`. Signal handlers only
set state: the first SIGTERM/SIGINT starts the graceful shutdown, a second one exits at once.

With `--workers N` each worker process runs this same server without the ops port and without
the pre-stop wait (`serve_ops=False`): the supervisor (`supervisor.py`) owns those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from pilothouse.asgi import ASGIApp, direct_call
from pilothouse.config.model import Config
from pilothouse.errors import OperationError
from pilothouse.runtime.connection_guard import OTHER_DESCRIPTORS, fd_cap, quiet_accept_errors
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.shutdown import Deadlines, Steps, run_shutdown
from pilothouse.runtime.signals import ShutdownSignals
from pilothouse.runtime.uvicorn_server import (
    SignalFreeServer,
    cancelled_lifespan,
    check_stack,
    chosen_http,
    ops_server,
    port_limits,
    running_tasks,
    start_server,
    stop_server,
)
from pilothouse.runtime.uvicorn_server import run as run_on_loop

log = logging.getLogger("pilothouse.server")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PilothouseServer:
    """Serves `app` on the service port and (unless `serve_ops=False`) the ops app on the ops port
    until signalled."""

    def __init__(
        self,
        runtime: Runtime,
        app: ASGIApp,
        *,
        app_socket: socket.socket | None = None,
        serve_ops: bool = True,
        on_started: Callable[[], None] | None = None,
        signals: tuple[signal.Signals, ...] = HANDLED_SIGNALS,
    ) -> None:
        self.runtime = runtime
        self.serve_ops = serve_ops
        self._app_socket_given = app_socket
        self._on_started = on_started
        self._handled = signals
        config = runtime.config
        http = config.service.http
        self.app_server = SignalFreeServer(
            uvicorn.Config(
                # Called by its bound `__call__` (`direct_call`); uvicorn cannot tell a bound
                # method's ASGI version, so it is named.
                direct_call(runtime.wrap(app)),
                interface="asgi3",
                host=config.service.host,
                port=config.service.port,
                lifespan="auto",
                log_config=None,
                access_log=False,
                # No `Server: uvicorn` (server software disclosure); `[protection.headers] server`
                # names one when wanted. uvicorn keeps sending `Date`.
                server_header=False,
                headers=server_headers(config),
                # Forwarded headers are believed only from `[protection].trusted_proxies`
                # (pilothouse.protection.proxies); uvicorn's own default trusts 127.0.0.1.
                proxy_headers=False,
                # The exact drain timeout (uvicorn types it int, but waits with a float fine).
                timeout_graceful_shutdown=config.lifecycle.drain_timeout,  # type: ignore[arg-type]
                **port_limits(config.service, "app", app_connection_cap(config), http),
            )
        )
        self.ops = ops_server(runtime.ops_app(), config.ops, http)
        self._stop = asyncio.Event()
        self._signals = ShutdownSignals(runtime.lifecycle, self._stop, config.lifecycle.hard_exit_after)

    async def serve(self) -> int:
        """Run until a signal and a graceful shutdown; return the exit code."""
        self._signals.install(self._handled)
        quiet_accept_errors(asyncio.get_running_loop())
        await self.startup()
        await self.main_loop()
        await self.shutdown()
        return 0

    # -- startup -----------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self.runtime.config
        if self.serve_ops:
            self._ops_socket = bind(config.ops.host, config.ops.port, "ops")
        self._app_socket = self._app_socket_given or bind(config.service.host, config.service.port, "app")
        if self.serve_ops:
            # Ops first: liveness answers and readiness says "starting" while the app boots.
            await start_server(self.ops, self._ops_socket)
            self._ops_loop = asyncio.create_task(self.ops.main_loop())
            self.runtime.start_checks()
        if not await self._start_app():
            return
        self._app_loop = asyncio.create_task(self.app_server.main_loop())
        await self.runtime.run_start_hooks()
        self.runtime.lifecycle.mark_ready()
        if self._on_started is not None:
            self._on_started()
        if not self.serve_ops:
            return
        log.info(
            "serving %s on %s:%d (%s, %s), ops on %s:%d",
            config.service.name,
            config.service.host,
            config.service.port,
            chosen_http(config.service.http),
            type(asyncio.get_running_loop()).__module__.split(".")[0],
            config.ops.host,
            config.ops.port,
        )

    async def _start_app(self) -> bool:
        """Start the app server (its lifespan startup); False if a signal cut it short."""
        started = await start_unless_stopped(
            start_server(self.app_server, self._app_socket), self._stop, self.runtime.config
        )
        if not started:
            cancelled_lifespan(getattr(self.app_server, "lifespan", None))
        return started

    async def main_loop(self) -> None:
        if not self.started:
            return
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop, self._app_loop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not self.runtime.lifecycle.shutting_down:  # the app server stopped on its own
            self.runtime.lifecycle.begin_shutdown("app server stopped")

    # -- shutdown ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """The app server started (False after a startup cut short by a signal)."""
        return hasattr(self, "_app_loop")

    async def shutdown(self) -> None:
        """The shutdown sequence (`pilothouse.runtime.shutdown`) with this server's steps."""
        if not self.started:  # startup cancelled: nothing to drain, features never started
            self._app_socket.close()
        await run_shutdown(self.runtime.lifecycle, self._steps(), Deadlines.of(self.runtime.config.lifecycle))
        if self.serve_ops:
            log.info("stopped")

    def _steps(self) -> Steps:
        stop_ops = self._stop_ops if self.serve_ops else None
        if not self.started:
            return Steps(flush=self.runtime.flush, stop_ops=stop_ops)
        sockets = [self._app_socket]
        return Steps(
            # Readiness already answers 503 (the signal handler moved to DRAINING); keep serving
            # for pre_stop_delay so load balancers notice and stop sending.
            pre_stop=bool(self._signals.count) and self.serve_ops,
            stop_accepting=lambda: self.app_server.stop_accepting(self._app_loop, sockets),
            # In-flight requests finish up to drain_timeout; the rest are cancelled (dropped).
            drain=lambda: self._drain(sockets),
            feature_drain=self.runtime.run_drain_hooks,  # e.g. job workers, beside it
            lifespan=self.app_server.lifespan_shutdown,
            flush=self.runtime.flush,
            stop_ops=stop_ops,
        )

    async def _drain(self, sockets: list[socket.socket]) -> None:
        await self.app_server.drain(sockets)
        await self._wait_cancelled_tasks()
        if self.runtime.dropped:
            log.warning("drain timeout: %d request(s) cut", self.runtime.dropped)

    async def _stop_ops(self) -> None:
        await stop_server(self.ops, self._ops_loop, self._ops_socket)

    async def _wait_cancelled_tasks(self, limit: float = 1.0) -> None:
        """Give cancelled request tasks a moment to unwind so drops are counted."""
        deadline = asyncio.get_running_loop().time() + limit
        while running_tasks(self.app_server) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def server_headers(config: Config) -> list[tuple[str, str]]:
    """uvicorn's extra default headers on the app port: the `Server` header when configured."""
    server = config.protection.headers.server
    return [("server", server)] if server else []


def app_connection_cap(config: Config) -> int:
    """`[service].max_connections`, fitted under the open-file limit with room for the ops port."""
    return fd_cap(config.service.max_connections, config.ops.max_connections + OTHER_DESCRIPTORS)


def bind(host: str, port: int, role: str) -> socket.socket:
    """A listening socket, bound here so a busy port is one clear error (and can be shared)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it keep-alive responses stall ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationError(f"cannot listen on {host}:{port} for the {role} port: {exc.strerror}") from None
    return sock


async def start_unless_stopped(start: Coroutine[Any, Any, None], stop: asyncio.Event, config: Config) -> bool:
    """Run the app's startup `start` within `[lifecycle].startup_timeout`. False if `stop` was set
    first: the startup is cancelled, so SIGTERM during a slow startup exits within the budget."""
    limit = config.lifecycle.startup_timeout
    starting = asyncio.ensure_future(start)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()  # a failed startup raises here
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    if not stop.is_set():
        raise OperationError(
            f"the app did not finish starting within {limit:g}s ([lifecycle].startup_timeout)"
        )
    log.warning("startup cancelled: a shutdown signal arrived before the app finished starting")
    return False


def run(runtime: Runtime, app: ASGIApp) -> int:
    """Serve until signalled on the event loop `[service] loop` chooses; the process exit code."""
    check_stack(runtime.config)
    return run_on_loop(PilothouseServer(runtime, app).serve(), runtime.config.service.loop)

"""Everything Pilothouse uses of uvicorn beyond `uvicorn.run`, in one place.

- `SignalFreeServer`: uvicorn's `Server` without its signal capture. uvicorn installs its own
  SIGTERM handler and re-raises the signal after shutdown; Pilothouse needs the signal to start
  its own phased shutdown and to exit 0.
- The fast stack: `http_protocol` (the HTTP parser class, h11 or httptools) and `run` (the event
  loop, asyncio or uvloop) resolve `[service] http` / `loop` (or `serve --http/--loop`) the way
  uvicorn's own `--http` / `--loop` do: "auto" takes httptools and uvloop when installed.
- Starting a server on a socket Pilothouse bound (`start_server`), its running request tasks
  (`running_tasks`), and stopping the ops port (`stop_server`).

The non-public parts this touches (Server.startup/main_loop/on_tick/shutdown/capture_signals/
server_state, Config.load/loaded/lifespan_class, the lifespan's `startup_failed`, the protocol
table) are checked when this module is imported, so a uvicorn release that moves one fails at
start with one line naming it, not in the middle of a shutdown. The event loop goes through
uvicorn's public loop setup: `Config.get_loop_factory()` (uvicorn 0.36+) or, before it,
`Config.setup_event_loop()` (which installs the loop policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Literal

import uvicorn
import uvicorn.config

from pilothouse.config.model import Config
from pilothouse.config.ops import OpsConfig
from pilothouse.config.service import ServiceConfig
from pilothouse.errors import ConfigError, OperationError
from pilothouse.runtime.connection_guard import Limits, guarded_protocol

Http = Literal["auto", "h11", "httptools"]
Loop = Literal["auto", "asyncio", "uvloop"]

_SERVER_INTERNALS = ("startup", "main_loop", "on_tick", "shutdown", "capture_signals")
_CONFIG_INTERNALS = ("load",)


def _check_internals() -> None:
    missing = [f"Server.{name}" for name in _SERVER_INTERNALS if not hasattr(uvicorn.Server, name)]
    missing += [f"Config.{name}" for name in _CONFIG_INTERNALS if not hasattr(uvicorn.Config, name)]
    if not hasattr(uvicorn.config, "HTTP_PROTOCOLS") or not {"h11", "httptools"} <= set(
        uvicorn.config.HTTP_PROTOCOLS
    ):
        missing.append("config.HTTP_PROTOCOLS")
    if missing:
        raise ImportError(
            f"uvicorn {uvicorn.__version__} lacks what Pilothouse uses: {', '.join(missing)} "
            "(install a uvicorn release Pilothouse supports: pip install 'uvicorn>=0.30')"
        )


_check_internals()


class SignalFreeServer(uvicorn.Server):
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


# -- the fast stack ---------------------------------------------------------------------------

_EXTRA = {"httptools": "fast", "uvloop": "fast"}
"""The Pilothouse extra that brings each optional package."""


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ValueError:  # in sys.modules as None: made unimportable
        return False


def _require(package: str, setting: str) -> None:
    if not _installed(package):
        raise ConfigError(
            f"{setting}: '{package}' is not installed (pip install 'pilothouse[{_EXTRA[package]}]', "
            "or 'auto' to use it only when installed)"
        )


def chosen_http(http: Http) -> str:
    """The parser `http` resolves to here: "h11" or "httptools"."""
    if http == "auto":
        return "httptools" if _installed("httptools") else "h11"
    return http


def chosen_loop(loop: Loop) -> str:
    """The event loop `loop` resolves to here: "asyncio" or "uvloop"."""
    if loop == "auto":
        return "uvloop" if _installed("uvloop") else "asyncio"
    return loop


def check_stack(config: Config) -> None:
    """A parser or loop asked for by name (`[service]` or `serve --http/--loop`) but not
    installed: one clear ConfigError."""
    where = f"{config.source}: service" if config.source else "service"
    if config.service.http == "httptools":
        _require("httptools", f"{where}.http (or serve --http)")
    if config.service.loop == "uvloop":
        _require("uvloop", f"{where}.loop (or serve --loop)")


def loop_factory(loop: Loop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory uvicorn itself would use for `--loop loop` (None: asyncio's own)."""
    # The app is never loaded; log_config=None: no logging set up as a side effect.
    config = uvicorn.Config(app="unused:app", loop=chosen_loop(loop), log_config=None)
    get = getattr(config, "get_loop_factory", None)
    if get is not None:  # uvicorn 0.36+
        factory: Callable[[], asyncio.AbstractEventLoop] | None = get()
        return factory
    config.setup_event_loop()  # before 0.36: sets the event loop policy asyncio.Runner then uses
    return None


def run(main: Coroutine[Any, Any, int], loop: Loop) -> int:
    """Run `main` to completion on the event loop `loop` chooses; its result."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)


def http_protocol(limits: Limits, http: Http) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class for `http`, with the connection guard's `limits`."""
    return guarded_protocol(limits, chosen_http(http))


def port_limits(
    section: ServiceConfig | OpsConfig, port: str, max_connections: int, http: Http
) -> dict[str, Any]:
    """uvicorn.Config keywords: the parser with the port's timeouts and connection cap."""
    limits = Limits(port, section.header_timeout, section.idle_timeout, max_connections)
    # uvicorn types timeout_keep_alive int, but arms its timer with a float fine.
    return {"http": http_protocol(limits, http), "timeout_keep_alive": section.idle_timeout}


class OpsServer(SignalFreeServer):
    """The ops port's server. uvicorn's main loop wakes ten times a second: to refresh the Date
    header (once a second) and to see its exit flag. The ops port has nothing else to do on a
    tick, so its loop wakes once a second, each tick a Date tick, and `stop_server` cancels the
    wait instead of waiting for the flag to be seen. This saves idle wake-ups in every process;
    it did not move `serve`'s per-request figure measurably (docs/performance.md, "Fifth
    pass"). The app's server keeps uvicorn's loop (`limit_max_requests` and the drain read its
    flag)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 10  # uvicorn refreshes Date on `counter % 10 == 0`
            await asyncio.sleep(1.0)


def ops_server(app: Any, ops: OpsConfig, http: Http = "auto") -> OpsServer:
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
        **port_limits(ops, "ops", ops.max_connections, http),
    )
    return OpsServer(config)


# -- start and stop -------------------------------------------------------------------------------


async def start_server(server: uvicorn.Server, sock: socket.socket) -> None:
    """Start a uvicorn server on a bound socket; a failing app startup becomes one clear error."""
    if not server.config.loaded:
        server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup(sockets=[sock])
    except SystemExit:
        raise OperationError("the application's startup (ASGI lifespan) failed; see the log above") from None


def running_tasks(server: uvicorn.Server) -> int:
    """Request tasks the server still runs."""
    return len(server.server_state.tasks)


def cancelled_lifespan(lifespan: Any) -> None:
    """uvicorn's lifespan task still runs the app's startup after Pilothouse gave up on it; the
    loop cancels it when it closes. That cancellation is ours, not the app's failure: marked
    failed, uvicorn does not call the lifespan "unsupported", and what the framework reports
    about it (Starlette sends the CancelledError traceback) is not logged."""
    if lifespan is not None:
        lifespan.startup_failed = True
        lifespan.logger = _SILENCED


_SILENCED = logging.getLogger("pilothouse.server.cancelled-startup")
_SILENCED.disabled = True


async def stop_server(server: uvicorn.Server, main_loop: asyncio.Task[None], sock: socket.socket) -> None:
    """Stop a server whose `main_loop()` runs in `main_loop`: end the loop, then close its
    connections and `sock` (the ops port's last step in serve, the supervisor and attach)."""
    server.should_exit = True
    main_loop.cancel()  # it only waits for its next tick (`OpsServer`): nothing to finish
    await asyncio.wait({main_loop})
    if not main_loop.cancelled() and (error := main_loop.exception()) is not None:
        raise error
    await server.shutdown(sockets=[sock])

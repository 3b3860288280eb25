"""The ops port of a process that does not serve the app itself (the `--workers` supervisor,
`pilothouse jobs worker`, `attach` under a host server): bind, start, stop."""

from __future__ import annotations

import asyncio

from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import bind
from pilothouse.runtime.uvicorn_server import ops_server, start_server, stop_server


class OpsPort:
    """The runtime's ops app served on `[ops].host:port` from `start()` until `stop()`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind (a busy port is one OperationError) and serve; the configured checks start."""
        ops = self.runtime.config.ops
        self._socket = bind(ops.host, ops.port, "ops")
        self._server = ops_server(self.runtime.ops_app(), ops, self.runtime.config.service.http)
        await start_server(self._server, self._socket)
        self._task = asyncio.create_task(self._server.main_loop())

    @property
    def serving(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        """Close the port after the requests on it finished (nothing if it never started)."""
        if self._task is not None:
            task, self._task = self._task, None
            await stop_server(self._server, task, self._socket)

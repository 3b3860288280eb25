"""The app's ASGI lifespan without an HTTP server, for processes that serve no app requests
(`pilothouse jobs worker`) but run the app's checks: a check such as the demo shop's
`@pilothouse.check("database")` pings a pool the app opens in its lifespan startup, so the
worker starts the app exactly as `serve` does and stops it on shutdown."""

from __future__ import annotations

from typing import Any

import uvicorn

from pilothouse.errors import OperationError


class AppLifespan:
    """Runs `app`'s lifespan startup and shutdown with uvicorn's own lifespan implementation."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, lifespan="auto", log_config=None)
        config.load()
        self.lifespan: Any = config.lifespan_class(config)

    async def startup(self) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise OperationError("the application's startup (ASGI lifespan) failed; see the log above")

    async def shutdown(self) -> None:
        await self.lifespan.shutdown()

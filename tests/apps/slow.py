"""A tiny ASGI app for lifecycle tests: `/hello`, `/echo` (POST: the body back), `/own-policy`,
`/slow?seconds=N`, `/status?code=N` (answers N); its lifespan startup takes $STARTUP_DELAY
seconds, and its shutdown appends a line with its process id to the file named by
$SHUTDOWN_MARKER so tests can prove the app's shutdown hooks ran (in every worker process);
$SHUTDOWN_BLOCK seconds of a blocking sleep in its shutdown freeze the event loop (a hung app).
`/hog` opens files until the process has no descriptor left (held until `/release`), so tests
can exhaust descriptors without opening thousands of sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def own_policy(request: Request) -> PlainTextResponse:
    """Sets a security header itself (the protection layer keeps it and adds the others)."""
    return PlainTextResponse("own", headers={"Content-Security-Policy": "default-src 'self'"})


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await request.body())


async def slow(request: Request) -> JSONResponse:
    seconds = float(request.query_params.get("seconds", "1"))
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


async def status(request: Request) -> PlainTextResponse:
    return PlainTextResponse("status", status_code=int(request.query_params.get("code", "200")))


_held: list[IO[bytes]] = []


async def hog(request: Request) -> JSONResponse:
    with contextlib.suppress(OSError):
        while True:
            _held.append(Path(os.devnull).open("rb"))  # noqa: SIM115 - held on purpose until /release
    return JSONResponse({"held": len(_held)})


async def release(request: Request) -> JSONResponse:
    count = len(_held)
    while _held:
        _held.pop().close()
    return JSONResponse({"released": count})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await asyncio.sleep(float(os.environ.get("STARTUP_DELAY", "0")))
    yield
    time.sleep(float(os.environ.get("SHUTDOWN_BLOCK", "0")))  # blocks the loop on purpose
    marker = os.environ.get("SHUTDOWN_MARKER")
    if marker:
        with Path(marker).open("a") as file:  # one line per process; lines this short are atomic
            file.write(f"lifespan shutdown ran in {os.getpid()}\n")


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/own-policy", own_policy),
        Route("/slow", slow),
        Route("/status", status),
        Route("/hog", hog),
        Route("/release", release),
    ],
    lifespan=lifespan,
)

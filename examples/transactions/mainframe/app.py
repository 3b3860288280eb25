"""The online region: transactions run PROG-A, which LINKs to PROG-B (EXEC SQL SELECT), which
LINKs to PROG-C (WRITEQ TD, SEND MAP). Every program is a unit of work, every command has a
result code, the transient-data queue AUDT has a depth gauge, and each transaction gets a task
number (EIBTASKN) that tags its trace and its log lines.

    POST /transactions/PAYT  {"account": "1001", "delay": 0}
      -> 200 {"eibtaskn": "12345", "tranid": "PAYT", "balance": 250, "resp": "NORMAL"}
      -> 404 {"resp": "NOTFND"} for an unknown account
    POST /queues/AUDT/read   READQ TD: takes the oldest record (404 QZERO when empty)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse
from pilothouse.secrets import live
from pilothouse.telemetry import command, queue_depth, set_correlation, unit_of_work, watch_pool
from pilothouse.telemetry.psycopg_cursors import AsyncTracedCursor

log = logging.getLogger("mainframe")

TABLE = os.environ.get("OPEN_MAINFRAME_TABLE", "accounts")
"""The VSAM-file-turned-table the programs read (a unique name per test run on a shared database)."""
TD_MAXDEPTH = int(os.environ.get("OPEN_MAINFRAME_TD_MAXDEPTH", "1000"))
"""The AUDT queue's capacity: a full queue takes the region out of service (the `cics` check)."""


class NotFound(Exception):
    """RESP=NOTFND: the program ends the transaction with a 404."""


class Region:
    """What the region holds between transactions: the pool, the TD queue, the task counter."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[Any] | None = None
        self.audt: deque[dict[str, Any]] = deque()
        self.tasks = itertools.count(12345)
        self.open = False


region = Region()


@unit_of_work("PROG-C")
async def prog_c(tranid: str, account: str, balance: int) -> None:
    with command("WRITEQ-TD") as cmd:
        region.audt.append({"tranid": tranid, "account": account, "balance": balance})
        cmd.result = "NORMAL"
    with command("SEND-MAP") as cmd:
        cmd.result = "NORMAL"


@unit_of_work("PROG-B")
async def prog_b(tranid: str, account: str, delay: float) -> int:
    assert region.pool is not None
    with command("READ") as cmd:
        async with region.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT balance, pg_sleep(%s) FROM {TABLE} WHERE account = %s",
                (delay, account),
            )
            row = await cur.fetchone()
        cmd.result = "NORMAL" if row else "NOTFND"
    if row is None:
        raise NotFound(account)
    balance = int(row[0])
    with command("LINK") as cmd:
        await prog_c(tranid, account, balance)
        cmd.result = "NORMAL"
    return balance


@unit_of_work("PROG-A")
async def prog_a(tranid: str, account: str, delay: float) -> int:
    with command("LINK") as cmd:
        try:
            balance = await prog_b(tranid, account, delay)
        except NotFound:
            cmd.result = "NOTFND"
            raise
        cmd.result = "NORMAL"
    return balance


async def transaction(request: Request) -> JSONResponse:
    tranid = request.path_params["tranid"]
    body = await request.json()
    taskn = str(next(region.tasks))
    set_correlation(taskn)
    log.info("transaction %s started", tranid)
    try:
        balance = await prog_a(tranid, str(body.get("account", "")), float(body.get("delay", 0)))
    except NotFound:
        return JSONResponse({"eibtaskn": taskn, "tranid": tranid, "resp": "NOTFND"}, status_code=404)
    return JSONResponse({"eibtaskn": taskn, "tranid": tranid, "balance": balance, "resp": "NORMAL"})


async def readq(request: Request) -> JSONResponse:
    with command("READQ-TD") as cmd:
        if not region.audt:
            cmd.result = "QZERO"
            return JSONResponse({"resp": "QZERO"}, status_code=404)
        cmd.result = "NORMAL"
        return JSONResponse({"resp": "NORMAL", "record": region.audt.popleft()})


@pilothouse.check("cics")
async def cics_check() -> None:
    if not region.open:
        raise RuntimeError("region not open")
    if len(region.audt) >= TD_MAXDEPTH:
        raise RuntimeError(f"TD queue AUDT full ({len(region.audt)} of {TD_MAXDEPTH})")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = live("db-credentials.url").reveal()  # required: serve refuses to start without it
    region.pool = AsyncConnectionPool(
        url, min_size=1, max_size=4, kwargs={"cursor_factory": AsyncTracedCursor}, open=False
    )
    await region.pool.open(wait=False)
    watch_pool("db", region.pool)
    queue_depth("AUDT", lambda: len(region.audt))
    with contextlib.suppress(Exception):  # the database may come later: readiness says so
        async with asyncio.timeout(5), region.pool.connection() as conn:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (account text PRIMARY KEY, balance int NOT NULL)"
            )
            await conn.execute(f"INSERT INTO {TABLE} VALUES ('1001', 250) ON CONFLICT DO NOTHING")
    region.open = True
    yield
    region.open = False
    await region.pool.close()


app = Starlette(
    routes=[
        Route("/transactions/{tranid}", transaction, methods=["POST"]),
        Route("/queues/AUDT/read", readq, methods=["POST"]),
    ],
    lifespan=lifespan,
)

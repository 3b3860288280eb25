"""Storage for the shop: SQLite by default (embedded), PostgreSQL when DATABASE_URL is set.

Both speak the same tiny interface; the SQLite calls run in a thread so the event loop never
blocks on disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any, Protocol

SEED = [
    ("kettle", "Stainless kettle", 3499, 12),
    ("mug", "Enamel mug", 899, 40),
    ("grinder", "Burr coffee grinder", 8999, 5),
]


class OutOfStock(Exception):
    """Not enough items left to fill the order."""


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def items(self) -> list[dict[str, Any]]: ...
    async def item(self, sku: str) -> dict[str, Any] | None: ...
    async def order(self, sku: str, quantity: int) -> dict[str, Any]: ...


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def _run(self, func: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(func, *args)

    async def open(self) -> None:
        def setup() -> None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS items (sku TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " sku TEXT NOT NULL REFERENCES items(sku), quantity INTEGER NOT NULL)"
            )
            conn.executemany("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?)", SEED)
            self._conn = conn

        await self._run(setup)

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)

    def _c(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not opened"
        return self._conn

    async def ping(self) -> None:
        await self._run(lambda: self._c().execute("SELECT 1").fetchone())

    async def items(self) -> list[dict[str, Any]]:
        rows = await self._run(lambda: self._c().execute("SELECT * FROM items ORDER BY sku").fetchall())
        return [dict(r) for r in rows]

    async def item(self, sku: str) -> dict[str, Any] | None:
        row = await self._run(
            lambda: self._c().execute("SELECT * FROM items WHERE sku = ?", (sku,)).fetchone()
        )
        return dict(row) if row else None

    async def order(self, sku: str, quantity: int) -> dict[str, Any]:
        def place() -> dict[str, Any]:
            conn = self._c()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?",
                    (quantity, sku, quantity),
                )
                if cur.rowcount != 1:
                    raise OutOfStock(sku)
                order_id = conn.execute(
                    "INSERT INTO orders (sku, quantity) VALUES (?, ?)", (sku, quantity)
                ).lastrowid
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return {"id": order_id, "sku": sku, "quantity": quantity}

        result: dict[str, Any] = await self._run(place)
        return result


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=5, open=False, kwargs={"row_factory": dict_row}
        )
        await self._pool.open(wait=True, timeout=10)
        async with self._pool.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS items (sku TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS orders (id SERIAL PRIMARY KEY,"
                " sku TEXT NOT NULL REFERENCES items(sku), quantity INTEGER NOT NULL)"
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO items VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", SEED
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def ping(self) -> None:
        async with self._pool.connection(timeout=1) as conn:
            await conn.execute("SELECT 1")

    async def items(self) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM items ORDER BY sku")
            return list(await cur.fetchall())

    async def item(self, sku: str) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM items WHERE sku = %s", (sku,))
            row: dict[str, Any] | None = await cur.fetchone()
            return row

    async def order(self, sku: str, quantity: int) -> dict[str, Any]:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE items SET stock = stock - %s WHERE sku = %s AND stock >= %s",
                (quantity, sku, quantity),
            )
            if cur.rowcount != 1:
                raise OutOfStock(sku)
            cur = await conn.execute(
                "INSERT INTO orders (sku, quantity) VALUES (%s, %s) RETURNING id", (sku, quantity)
            )
            row = await cur.fetchone()
            assert row is not None
            return {"id": row["id"], "sku": sku, "quantity": quantity}


def store_from_env() -> Store:
    url = os.environ.get("DATABASE_URL")
    if url:
        return PostgresStore(url)
    return SqliteStore(os.environ.get("SHOP_SQLITE_PATH", "shop.sqlite3"))

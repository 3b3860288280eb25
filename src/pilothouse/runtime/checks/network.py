"""Checks that talk to something over the network: tcp, http, postgres, redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from pilothouse.config.checks import HttpCheck, PostgresCheck, RedisCheck, TcpCheck
from pilothouse.errors import ConfigError
from pilothouse.runtime.checks.blocking import in_thread
from pilothouse.runtime.checks.result import CheckFailed, Probe

UrlSource = Callable[[], str]
"""Where a check reads its URL on each run: a literal, or a (live) secret."""


def tcp_probe(cfg: TcpCheck, timeout: float) -> Probe:
    async def probe() -> None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(cfg.host, cfg.port), timeout)
        except (OSError, TimeoutError) as exc:
            raise CheckFailed(f"cannot connect to {cfg.host}:{cfg.port}: {_reason(exc)}") from None
        writer.close()
        await writer.wait_closed()

    return probe


def http_probe(cfg: HttpCheck, timeout: float) -> Probe:
    client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
    expected = set(cfg.expect_status)

    async def probe() -> None:
        try:
            response = await client.get(cfg.url)
        except httpx.HTTPError as exc:
            raise CheckFailed(f"request failed: {type(exc).__name__}") from None
        ok = response.status_code in expected if expected else 200 <= response.status_code < 300
        if not ok:
            raise CheckFailed(f"unexpected status {response.status_code}")

    return probe


def postgres_probe(cfg: PostgresCheck, url: UrlSource, timeout: float) -> Probe:
    """`SELECT 1` on a new connection. `url()` is called on every run, so a rotated secret is
    picked up by the next check."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on installed extras
        raise ConfigError(
            f"checks '{cfg.name}': the postgres check needs the 'postgres' extra: "
            "pip install 'pilothouse[postgres]'"
        ) from None

    def select_one() -> None:
        try:
            with psycopg.connect(url(), connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
                conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            raise CheckFailed(_first_line(exc)) from None

    return in_thread(select_one)


def redis_probe(cfg: RedisCheck, url: UrlSource, timeout: float) -> Probe:
    """`PING`; `url()` is called on every run (rotated secrets are picked up)."""
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on installed extras
        raise ConfigError(
            f"checks '{cfg.name}': the redis check needs the 'redis' extra: pip install 'pilothouse[redis]'"
        ) from None

    def ping() -> None:
        client: Any = redis.Redis.from_url(url(), socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise CheckFailed(_first_line(exc)) from None
        finally:
            client.close()

    return in_thread(ping)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]

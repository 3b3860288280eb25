"""Each built-in check against the real thing: PostgreSQL, Redis, TCP, HTTP, disk, freshness,
user callables; and the timeout holds when a driver hangs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pilothouse
from pilothouse.config import config_from_dict
from pilothouse.errors import SecretError
from pilothouse.runtime.checks import CheckRunner, build_checks
from pilothouse.secrets import SecretResolver
from tests.runtime.tcp_gate import TcpGate


def runner_for(*checks: dict[str, Any], ttl: str = "1s", timeout: str = "1s") -> CheckRunner:
    config = config_from_dict(
        {
            "service": {"name": "svc"},
            "probes": {"check_timeout": timeout, "cache_ttl": ttl},
            "checks": list(checks),
        }
    )
    return CheckRunner(build_checks(config), config.probes.cache_ttl)


async def statuses(runner: CheckRunner) -> dict[str, tuple[str, str | None]]:
    report = await runner.report()
    return {r.name: (r.status, r.error) for r in report.results}


@pytest.fixture
def gate() -> Iterator[TcpGate]:
    g = TcpGate(5432)
    yield g
    g.close()


async def test_postgres_up_and_down(postgres_url: str, refused_port: Callable[[], int]) -> None:
    runner = runner_for(
        {"name": "up", "kind": "postgres", "url": postgres_url},
        {"name": "down", "kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{refused_port()}/test"},
    )
    result = await statuses(runner)
    assert result["up"] == ("pass", None)
    status, error = result["down"]
    assert status == "fail" and error and "refused" in error.lower()


async def test_redis_up_and_down(redis_url: str, refused_port: Callable[[], int]) -> None:
    runner = runner_for(
        {"name": "up", "kind": "redis", "url": redis_url},
        {"name": "down", "kind": "redis", "url": f"redis://127.0.0.1:{refused_port()}/0", "critical": False},
    )
    result = await statuses(runner)
    assert result["up"] == ("pass", None)
    assert result["down"][0] == "warn"  # non-critical failures warn
    report = await runner.report()
    assert report.ok and report.status == "warn"


async def test_tcp_and_http(gate: TcpGate, refused_port: Callable[[], int]) -> None:
    from tests.helpers import ServeProcess  # noqa: F401 - imported for parity with other suites

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    runner = runner_for(
        {"name": "open", "kind": "tcp", "host": "127.0.0.1", "port": port},
        {"name": "shut", "kind": "tcp", "host": "127.0.0.1", "port": refused_port()},
        {"name": "web", "kind": "http", "url": f"http://127.0.0.1:{refused_port()}/"},
    )
    result = await statuses(runner)
    server.close()
    assert result["open"] == ("pass", None)
    assert result["shut"][0] == "fail" and "cannot connect" in (result["shut"][1] or "")
    assert result["web"][0] == "fail" and "ConnectError" in (result["web"][1] or "")


async def test_http_expected_status() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    runner = runner_for(
        {"name": "any2xx", "kind": "http", "url": url},
        {"name": "teapot", "kind": "http", "url": url, "expect_status": [418]},
    )
    result = await statuses(runner)
    server.close()
    assert result["any2xx"] == ("fail", "unexpected status 418")
    assert result["teapot"] == ("pass", None)


async def test_disk(tmp_path: Path) -> None:
    runner = runner_for(
        {"name": "roomy", "kind": "disk", "path": str(tmp_path), "min_free": "1KiB"},
        {"name": "greedy", "kind": "disk", "path": str(tmp_path), "min_free": "1000TiB"},
        {"name": "gone", "kind": "disk", "path": str(tmp_path / "nope")},
    )
    result = await statuses(runner)
    assert result["roomy"] == ("pass", None)
    assert result["greedy"][0] == "fail" and "MiB free" in (result["greedy"][1] or "")
    assert result["gone"][0] == "fail" and "cannot stat" in (result["gone"][1] or "")


async def test_freshness_marker_and_file(tmp_path: Path) -> None:
    stamp = tmp_path / "last-sync"
    stamp.write_text("")
    old = time.time() - 600
    runner = runner_for(
        {"name": "sync", "kind": "freshness", "marker": "test-sync", "max_age": "5m"},
        {"name": "file", "kind": "freshness", "file": str(stamp), "max_age": "5m"},
        ttl="0s",
    )
    result = await statuses(runner)
    assert result["sync"][0] == "fail" and "never been touched" in (result["sync"][1] or "")
    assert result["file"] == ("pass", None)
    pilothouse.touch("test-sync")
    os.utime(stamp, (old, old))
    result = await statuses(runner)
    assert result["sync"] == ("pass", None)
    assert result["file"][0] == "fail" and "allowed 300s" in (result["file"][1] or "")


async def test_python_checks_sync_async_decorated() -> None:
    @pilothouse.check("decorated")
    async def decorated() -> None:
        raise pilothouse.CheckFailed("queue consumer is stuck")

    runner = runner_for(
        {"name": "decorated", "kind": "python"},
        {"name": "by-target", "kind": "python", "target": "os:getcwd"},
        {"name": "falsy", "kind": "python", "target": "tests.runtime.test_checks:returns_false"},
        {"name": "raises", "kind": "python", "target": "tests.runtime.test_checks:raises"},
    )
    result = await statuses(runner)
    assert result["decorated"] == ("fail", "queue consumer is stuck")
    assert result["by-target"] == ("pass", None)
    assert result["falsy"] == ("fail", "check returned False")
    assert result["raises"][0] == "fail" and "ZeroDivisionError" in (result["raises"][1] or "")


def returns_false() -> bool:
    return False


def raises() -> None:
    1 / 0  # noqa: B018


def hangs() -> None:
    time.sleep(30)


async def test_a_hung_driver_cannot_hang_the_probe(gate: TcpGate) -> None:
    """PostgreSQL behind a port that listens but never answers, and a sync callable that sleeps
    30 s: both fail within their timeout, and the stuck thread is not started twice."""
    gate.set("blackhole")
    runner = runner_for(
        {
            "name": "pg",
            "kind": "postgres",
            "url": f"postgresql://postgres@127.0.0.1:{gate.port}/test",
            "timeout": "500ms",
        },
        {"name": "sleepy", "kind": "python", "target": "tests.runtime.test_checks:hangs", "timeout": "300ms"},
        ttl="0s",
    )
    start = time.monotonic()
    result = await statuses(runner)
    assert time.monotonic() - start < 2
    assert result["pg"] == ("fail", "timed out after 0.5s")
    assert result["sleepy"] == ("fail", "timed out after 0.3s")
    result = await statuses(runner)
    assert result["sleepy"] == ("fail", "previous run still in progress (dependency not answering)")


def leaks_a_dsn() -> None:
    raise RuntimeError("cannot reach postgresql://shop:s3cr3t-password@db.internal:5432/shop")


async def test_errors_never_carry_credentials() -> None:
    """A check whose exception echoes a DSN with a password: the readiness error masks it
    (nothing registered beforehand: the URL-credential rule alone must catch it)."""
    runner = runner_for(
        {"name": "leaky", "kind": "python", "target": "tests.runtime.test_checks:leaks_a_dsn"}
    )
    error = (await statuses(runner))["leaky"][1] or ""
    assert "s3cr3t" not in error and "postgresql://***@db.internal:5432/shop" in error


async def test_a_rotated_secret_url_is_used_on_the_next_run(
    tmp_path: Path, postgres_url: str, refused_port: Callable[[], int]
) -> None:
    """The postgres check reads its secret URL on every run: after a Kubernetes-style rotation
    of the mounted file the next run connects with the new value."""
    mount = tmp_path / "secrets"
    (mount / "db").mkdir(parents=True)
    (mount / "db" / "url").write_text(f"postgresql://postgres@127.0.0.1:{refused_port()}/test")
    config = config_from_dict(
        {
            "service": {"name": "svc"},
            "probes": {"cache_ttl": "0s"},
            "secrets": {"sources": ["kubernetes"], "mount_dir": str(mount)},
            "checks": [{"name": "db", "kind": "postgres", "url": {"secret": "db.url"}}],
        },
    )
    runner = CheckRunner(build_checks(config, SecretResolver(config).get), 0)
    assert (await statuses(runner))["db"][0] == "fail"
    (mount / "db" / "url").write_text(postgres_url)
    assert (await statuses(runner))["db"] == ("pass", None)


def test_a_secret_url_without_the_secrets_feature_is_one_clear_error(tmp_path: Path) -> None:
    """The checks get secrets through the resolver they are handed (the runtime does not import
    the secrets feature); with none, a secret URL fails startup naming the secret."""
    config = config_from_dict(
        {
            "service": {"name": "svc"},
            "secrets": {"sources": ["kubernetes"], "mount_dir": str(tmp_path)},
            "checks": [{"name": "db", "kind": "postgres", "url": {"secret": "db.url"}}],
        },
    )
    with pytest.raises(SecretError, match=r"secret:db\.url: no secret resolver"):
        build_checks(config)

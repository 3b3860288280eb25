"""Rate limits: in memory against a real `pilothouse serve`; in the shared Redis on
127.0.0.1:6379 across two serve processes (N allowed in total, the rest 429); a Redis outage
(a TCP gate in front of Redis closed, never the shared Redis stopped) failing closed with 503 and
readiness down, or open, and recovering when the gate opens. Each test uses its own key prefix.
The three algorithms give the same answers in memory and in Redis (one model, two stores)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from pilothouse.config.protection import RateLimitConfig
from pilothouse.protection.ratelimit_store import Counters, MemoryCounters, RedisCounters, Verdict
from tests.helpers import eventually
from tests.protection.conftest import Serve
from tests.runtime.tcp_gate import TcpGate

REDIS = "redis://127.0.0.1:6379/0"


def limit_config(redis_url: str | None, prefix: str, extra: str = "", limit: int = 5) -> str:
    storage = f'storage = "redis"\nredis_url = "{redis_url}"\n' if redis_url else ""
    return (
        f'[[protection.rate_limits]]\nname = "api"\npaths = ["/client"]\nlimit = {limit}\nwindow = "1m"\n'
        f'key_prefix = "{prefix}"\n{storage}{extra}'
    )


@pytest.fixture
def prefix() -> Iterator[str]:
    value = f"test-ratelimit-{uuid.uuid4().hex}"
    yield value
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{value}:*"):
        client.delete(key)
    client.close()


def test_in_memory_limit_answers_429_with_retry_after_and_ratelimit_fields(serve: Serve, prefix: str) -> None:
    service = serve(limit_config(None, prefix, limit=3))
    url = f"{service.app_url}/client"
    answers = [httpx.get(url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0", "r=0"]
    assert answers[0].headers["ratelimit-policy"] == '"api";q=3;w=60'
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429
    other = httpx.get(f"{service.app_url}/stats")  # a path no limit names
    assert other.status_code == 200 and "ratelimit" not in other.headers
    metrics = httpx.get(f"{service.ops_url}/metrics").text
    assert 'pilothouse_http_requests_refused_total{reason="rate_limited"} 1.0' in metrics


def test_api_key_header_limits_each_key_separately(serve: Serve, prefix: str) -> None:
    service = serve(limit_config(None, prefix, 'key = "header:X-API-Key"\n', limit=2))
    url = f"{service.app_url}/client"
    first = [httpx.get(url, headers={"X-API-Key": "key-one"}).status_code for _ in range(3)]
    second = [httpx.get(url, headers={"X-API-Key": "key-two"}).status_code for _ in range(3)]
    assert first == second == [200, 200, 429]
    assert httpx.get(url).status_code == 200  # no key: not this limit's business


def test_redis_limit_holds_across_two_processes(serve: Serve, prefix: str) -> None:
    config = limit_config(REDIS, prefix, limit=5)
    one, two = serve(config), serve(config)
    statuses = []
    for _ in range(4):
        statuses.append(httpx.get(f"{one.app_url}/client").status_code)
        statuses.append(httpx.get(f"{two.app_url}/client").status_code)
    assert statuses.count(200) == 5
    assert statuses.count(429) == 3
    assert statuses[:5] == [200] * 5


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_redis_outage_fails_as_configured_and_recovers(serve: Serve, prefix: str, mode: str) -> None:
    gate = TcpGate(6379)
    gate.set("forward")
    try:
        service = serve(
            limit_config(
                f"redis://127.0.0.1:{gate.port}/0", prefix, f'on_backend_error = "{mode}"\n', limit=100
            )
            + '[probes]\ncache_ttl = "0s"\n'
        )
        url = f"{service.app_url}/client"
        assert httpx.get(url).status_code == 200
        assert httpx.get(f"{service.ops_url}/ready").status_code == 200
        gate.set("closed")
        during = httpx.get(url)
        ready = httpx.get(f"{service.ops_url}/ready")
        metrics = httpx.get(f"{service.ops_url}/metrics").text
        assert 'pilothouse_rate_limit_backend_up{limit="api"} 0.0' in metrics
        if mode == "closed":
            assert during.status_code == 503
            assert during.headers["content-type"] == "application/problem+json"
            assert ready.status_code == 503  # critical: this replica leaves the load balancer
        else:
            assert during.status_code == 200
            assert "ratelimit" not in during.headers
            assert ready.status_code == 200
            assert ready.json()["checks"]["rate-limit-api"]["status"] == "warn"
        gate.set("forward")
        eventually(lambda: httpx.get(url).status_code == 200 and "ratelimit" in httpx.get(url).headers)
        assert httpx.get(f"{service.ops_url}/ready").status_code == 200
        assert (
            'pilothouse_rate_limit_backend_up{limit="api"} 1.0'
            in httpx.get(f"{service.ops_url}/metrics").text
        )
    finally:
        gate.close()


def test_refused_line_names_the_proxy_resolved_client(serve: Serve, prefix: str) -> None:
    service = serve(limit_config(None, prefix, limit=1) + '[protection]\ntrusted_proxies = ["127.0.0.1"]\n')
    url = f"{service.app_url}/client"
    headers = {"X-Forwarded-For": "198.51.100.23"}
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(url, headers=headers).status_code == 429
    assert httpx.get(url, headers={"X-Forwarded-For": "198.51.100.24"}).status_code == 200  # its own budget
    service.stop()
    assert re.search(
        r'"message": "refused GET /client: rate_limited".*"client_address": "198.51.100.23"', service.output
    )


ALGORITHMS = ["fixed-window", "sliding-window", "token-bucket"]


def counters(store: str, algorithm: str, prefix: str, limit: int, window: str) -> Counters:
    config = RateLimitConfig.model_validate(
        {"name": "unit", "limit": limit, "window": window, "algorithm": algorithm, "key_prefix": prefix}
    )
    return RedisCounters(config, REDIS) if store == "redis" else MemoryCounters(config)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_algorithms_allow_the_limit_then_refuse(store: str, algorithm: str, prefix: str) -> None:
    limiter = counters(store, algorithm, prefix, 3, "1m")
    verdicts = [await limiter.hit("k") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    refused: Verdict = verdicts[3]
    assert 0 < refused.reset_ms <= 60_000
    assert (await limiter.hit("other")).allowed  # keys are separate
    if isinstance(limiter, RedisCounters):
        await limiter.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_token_bucket_refills_continuously(store: str, prefix: str) -> None:
    """Two tokens per 200 ms: once empty, the next token comes within 100 ms — waited for by
    polling the verdict's own reset time, not by a fixed sleep."""
    limiter = counters(store, "token-bucket", prefix, 2, "200ms")
    assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]
    refused = await limiter.hit("k")
    assert not refused.allowed and refused.reset_ms <= 100
    deadline = time.monotonic() + 5
    while not (await limiter.hit("k")).allowed:
        assert time.monotonic() < deadline
    if isinstance(limiter, RedisCounters):
        await limiter.close()

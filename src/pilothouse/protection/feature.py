"""`install(runtime)`: the protection feature (listed in `pilothouse.runtime.features`).

Its middleware goes inside the in-flight layer, so it runs inside telemetry (its answers carry
the request id and trace id and are counted and logged like any response). From the outside
in: `ProtectionMiddleware` (proxies, limits, headers, errors: it sees every answer the others
give), then the rate limits, then the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.config.checks import RedisCheck
from pilothouse.config.protection import RateLimitConfig
from pilothouse.protection.middleware import ProtectionMiddleware
from pilothouse.protection.ratelimit import Limit, RateLimitMiddleware
from pilothouse.protection.ratelimit_store import Counters, MemoryCounters, RedisCounters
from pilothouse.runtime.checks import Check
from pilothouse.runtime.checks.factory import url_source
from pilothouse.runtime.checks.network import redis_probe
from pilothouse.runtime.metrics import Metrics
from pilothouse.secrets import SecretResolver

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    config = runtime.config
    protection = config.protection
    metrics = runtime.metrics if config.telemetry.metrics else None
    if protection.rate_limits:
        limits = [_limit(runtime, limit, metrics) for limit in protection.rate_limits]
        runtime.add_middleware(lambda app: RateLimitMiddleware(app, limits, metrics), inner=True)
    parts = (protection.errors.enabled, protection.headers.enabled, protection.limits.enabled)
    if any(parts) or protection.trusted_proxies:
        runtime.add_middleware(lambda app: ProtectionMiddleware(app, protection, metrics), inner=True)


def _limit(runtime: Runtime, config: RateLimitConfig, metrics: Metrics | None) -> Limit:
    counters: Counters
    if config.storage == "redis":
        assert config.redis_url is not None
        url = url_source(config.redis_url, SecretResolver(runtime.config))
        redis_counters = RedisCounters(config, url())
        counters = redis_counters
        runtime.on_drain(redis_counters.close)
        # Readiness says when the shared store is gone: critical when the limit fails closed
        # (this replica answers 503s), a warning when it fails open (it serves, unlimited).
        check = RedisCheck(name=f"rate-limit-{config.name}", kind="redis", url=config.redis_url)
        timeout = runtime.config.probes.check_timeout
        runtime.add_check(
            Check(
                check.name,
                "redis",
                config.on_backend_error == "closed",
                timeout,
                redis_probe(check, url, timeout),
            )
        )
    else:
        counters = MemoryCounters(config)
    return Limit(config, counters, metrics)

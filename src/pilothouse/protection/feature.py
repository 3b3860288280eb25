"""`install(runtime)`: the protection feature (listed in `pilothouse.features`).

Its middleware goes inside the in-flight layer, so it runs inside telemetry (its answers carry
the request id and trace id and are counted and logged like any response). From the outside
in: `ProtectionMiddleware` (proxies, limits, headers, errors: it sees every answer the others
give), CORS (preflights answered before authentication: they carry no credentials),
authentication (so a rate limit can key on the subject), the rate limits, the app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.config.checks import RedisCheck
from pilothouse.config.protection import AuthConfig, RateLimitConfig
from pilothouse.errors import ConfigError
from pilothouse.metrics import Metrics
from pilothouse.protection.cors import cors_middleware
from pilothouse.protection.middleware import ProtectionMiddleware
from pilothouse.protection.ratelimit import Limit, RateLimitMiddleware
from pilothouse.protection.ratelimit_store import Counters, MemoryCounters, RedisCounters
from pilothouse.runtime.checks import Check
from pilothouse.runtime.checks.factory import url_source
from pilothouse.runtime.checks.network import redis_probe
from pilothouse.secrets import SecretResolver

if TYPE_CHECKING:
    from pilothouse.protection.auth import Keys
    from pilothouse.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    config = runtime.config
    protection = config.protection
    metrics = runtime.metrics if config.telemetry.metrics else None
    if protection.rate_limits:
        limits = [_limit(runtime, limit, metrics) for limit in protection.rate_limits]
        runtime.add_middleware(lambda app: RateLimitMiddleware(app, limits, metrics), inner=True)
    if protection.auth is not None:
        auth = protection.auth
        keys, api_keys = _credentials(runtime, auth)
        from pilothouse.protection.auth import AuthMiddleware  # PyJWT: imported only when used

        runtime.add_middleware(lambda app: AuthMiddleware(app, auth, keys, api_keys, metrics), inner=True)
    if protection.cors is not None:
        cors = protection.cors
        runtime.add_middleware(lambda app: cors_middleware(app, cors), inner=True)
    parts = (protection.errors.enabled, protection.headers.enabled, protection.limits.enabled)
    if any(parts) or protection.trusted_proxies:
        runtime.add_middleware(lambda app: ProtectionMiddleware(app, protection, metrics), inner=True)


def _limit(runtime: Runtime, config: RateLimitConfig, metrics: Metrics | None) -> Limit:
    counters: Counters
    if config.storage == "redis":
        assert config.redis_url is not None
        url = url_source(config.redis_url, SecretResolver(runtime.config).get)
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


def _credentials(
    runtime: Runtime, auth: AuthConfig
) -> tuple[Keys | None, Callable[[], dict[bytes, str]] | None]:
    """The JWT keys and the API key table getter (a rotated secret is picked up: the table is
    rebuilt when the secret's value changes). The auth modules import PyJWT (the `auth` extra)."""
    try:
        from pilothouse.protection.auth import api_key_table
        from pilothouse.protection.jwks import JwksKeys, StaticKey
    except ImportError:
        raise ConfigError("protection.auth needs the 'auth' extra: pip install 'pilothouse[auth]'") from None
    resolver = SecretResolver(runtime.config)
    keys: Keys | None = None
    if auth.jwks_url is not None:
        keys = JwksKeys(auth.jwks_url, auth.jwks_refresh, auth.jwks_min_interval)
    elif auth.key_file is not None:
        try:
            material = Path(auth.key_file).read_text()
        except OSError as exc:
            raise ConfigError(
                f"protection.auth.key_file: cannot read {auth.key_file}: {exc.strerror}"
            ) from None
        keys = StaticKey(material, auth.algorithms)
    elif auth.key is not None:
        keys = StaticKey(resolver.get(auth.key), auth.algorithms)
    if auth.api_keys is None:
        return keys, None
    ref = auth.api_keys
    cache: dict[str, dict[bytes, str]] = {}

    def table() -> dict[bytes, str]:
        value = resolver.get(ref)
        found = cache.get(value)
        if found is None:
            cache.clear()
            found = cache[value] = api_key_table(value)
        return found

    table()  # a missing secret fails startup, not the first request
    return keys, table

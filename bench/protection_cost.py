"""Cost per request of the opt-in protection parts against hand-written minimal equivalents,
in process (the ASGI app called in a loop; process CPU time, so other load on the machine
shows less than in wall time):

- JWT: `AuthMiddleware` with a cached key (RS256, a key from a file: no fetch) against a
  minimal middleware that reads the bearer token and calls `jwt.decode` with the same key,
  audience and issuer — the least any verifying middleware must do.
- Redis rate limit: `RateLimitMiddleware` (fixed window, one Lua script call per request:
  counter, remaining and reset, plus the `RateLimit` fields) against a minimal middleware doing
  one `INCR` and `PEXPIRE` in a pipeline (one round trip, no reset time, no headers), both on
  the real Redis at 127.0.0.1:6379 under a unique key prefix.

Run: `.venv/bin/python bench/protection_cost.py` (needs the auth extra and Redis).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS = "redis://127.0.0.1:6379/0"


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def receive() -> Any:
    return {"type": "http.request", "body": b""}


async def sink(message: Any) -> None:
    return None


def make_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/items",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "headers": headers,
    }


async def per_request(asgi: Any, headers: list[tuple[bytes, bytes]], n: int) -> float:
    for _ in range(min(200, n)):
        await asgi(make_scope(headers), receive, sink)
    start = time.process_time()
    for _ in range(n):
        await asgi(make_scope(headers), receive, sink)
    return (time.process_time() - start) / n * 1e6


class MinimalJwt:
    """Bearer token → `jwt.decode`, 401 otherwise."""

    def __init__(self, inner: Any, key: Any) -> None:
        import jwt

        self.app, self.key, self.decode = inner, key, jwt.decode

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value[7:].decode()
                scope["user"] = self.decode(
                    token, self.key, algorithms=["RS256"], audience="bench", issuer="idp"
                )
                await self.app(scope, receive, send)
                return
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class MinimalRedisLimit:
    """INCR + PEXPIRE in one pipeline per request; 429 over the limit."""

    def __init__(self, inner: Any, client: Any, prefix: str, limit: int) -> None:
        self.app, self.client, self.prefix, self.limit = inner, client, prefix, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        key = f"{self.prefix}:{scope['client'][0]}"
        async with self.client.pipeline(transaction=False) as pipe:
            count, _ = await pipe.incr(key).pexpire(key, 60000, nx=True).execute()
        if count > self.limit:
            await send({"type": "http.response.start", "status": 429, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def jwt_apps(inner: Any, paths: tuple[str, ...] = ("/api/*",)) -> tuple[Any, Any, str]:
    """`inner` behind Pilothouse's auth (RS256 key from a file, cached) and behind the minimal
    verifier, and a valid token for both."""
    import tempfile

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pilothouse.config.protection import AuthConfig
    from pilothouse.protection.auth import AuthMiddleware
    from pilothouse.protection.jwks import StaticKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "bench", "aud": "bench", "iss": "idp", "exp": now + 3600, "scope": "read"}
    token = jwt.encode(claims, private, algorithm="RS256")
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:
        pem.write(public_pem.decode())
        pem.flush()
        config = AuthConfig(key_file=pem.name, audience="bench", issuer="idp", paths=list(paths))
        ours = AuthMiddleware(inner, config, StaticKey(public_pem.decode(), ["RS256"]), None, None)
    return ours, MinimalJwt(inner, private.public_key()), token


def redis_apps(inner: Any, prefix: str) -> tuple[Any, Any, Any]:
    """`inner` behind Pilothouse's Redis rate limit (fixed window) and behind the minimal one;
    and a coroutine function deleting their keys and closing their clients."""
    import redis.asyncio as aioredis

    from pilothouse.config.protection import RateLimitConfig
    from pilothouse.protection.ratelimit import Limit, RateLimitMiddleware
    from pilothouse.protection.ratelimit_store import RedisCounters

    config = RateLimitConfig(
        name="bench", limit=10**9, window="1m", storage="redis", redis_url=REDIS, key_prefix=prefix
    )
    counters = RedisCounters(config, REDIS)
    ours = RateLimitMiddleware(inner, [Limit(config, counters, None)], None)
    client = aioredis.Redis.from_url(REDIS)
    minimal = MinimalRedisLimit(inner, client, prefix + "-minimal", 10**9)

    async def close() -> None:
        async for key in client.scan_iter(f"{prefix}*"):
            await client.delete(key)
        await client.aclose()
        await counters.close()

    return ours, minimal, close


async def jwt_costs(n: int) -> dict[str, float]:
    ours, minimal, token = jwt_apps(app)
    headers = [(b"host", b"x"), (b"authorization", f"Bearer {token}".encode())]
    return {
        "bare": await per_request(app, headers, n),
        "jwt minimal": await per_request(minimal, headers, n),
        "jwt pilothouse": await per_request(ours, headers, n),
    }


async def redis_costs(n: int) -> dict[str, float]:
    ours, minimal, close = redis_apps(app, f"bench-ratelimit-{uuid.uuid4().hex}")
    headers = [(b"host", b"x")]
    try:
        return {
            "redis minimal": await per_request(minimal, headers, n),
            "redis pilothouse": await per_request(ours, headers, n),
        }
    finally:
        await close()


async def main() -> None:
    costs = {**await jwt_costs(5000), **await redis_costs(5000)}
    print("| variant | CPU µs / request (process) |")
    print("|---|---:|")
    for name, value in costs.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())

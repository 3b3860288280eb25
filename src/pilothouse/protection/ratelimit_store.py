"""Where rate-limit counters live: in this process (`MemoryCounters`) or in Redis for every
replica (`RedisCounters`), with the same three algorithms and the same answer — allowed, the
requests left, and the milliseconds until the limit resets — for one hit.

Why not the `limits` library (checked: limits 5.8.0): it has fixed window, moving window and
sliding-window counter but no token bucket; its `hit()` returns only a boolean, so the
`RateLimit` / `Retry-After` headers need `get_window_stats()` as well, which on Redis is two more
round trips (GET and PTTL) after the hit's script — three per request, not atomic with the
hit; and its synchronous Redis extra pins `redis<8` while Pilothouse's `redis` extra installs 8.x.
Here each algorithm is one Lua script: one round trip (EVALSHA), atomic, clock from Redis `TIME`
(replicas with skewed clocks agree), returning all three numbers.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Protocol

from pilothouse.config.protection import RateLimitConfig


class Verdict(NamedTuple):
    allowed: bool
    remaining: int
    reset_ms: int
    """Until the window resets (allowed) or until the next request would be allowed (refused)."""


class Counters(Protocol):
    async def hit(self, key: str) -> Verdict: ...


# ARGV: limit, window in ms. Every script returns {allowed (0/1), remaining, reset ms}.
_FIXED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
local limit = tonumber(ARGV[1])
if n > limit then return {0, 0, ttl} end
return {1, limit - n, ttl}
"""
_SLIDING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, w = tonumber(ARGV[1]), tonumber(ARGV[2])
local index = math.floor(now / w)
local elapsed = now - index * w
local current_key = KEYS[1] .. ':' .. index
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (index - 1)) or '0')
local current = tonumber(redis.call('GET', current_key) or '0')
local weighted = previous * (w - elapsed) / w + current
if weighted + 1 > limit then
  local wait = w - elapsed
  if previous > 0 and current < limit then
    wait = math.ceil(w - elapsed - (limit - 1 - current) * w / previous)
    if wait < 1 then wait = 1 end
  end
  return {0, 0, wait}
end
redis.call('INCR', current_key)
redis.call('PEXPIRE', current_key, 2 * w)
return {1, math.floor(limit - weighted - 1), w - elapsed}
"""
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity, w = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * capacity / w)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], w)
local reset
if allowed == 1 then reset = math.ceil((capacity - tokens) * w / capacity)
else reset = math.ceil((1 - tokens) * w / capacity) end
return {allowed, math.floor(tokens), reset}
"""
SCRIPTS = {"fixed-window": _FIXED, "sliding-window": _SLIDING, "token-bucket": _BUCKET}


class RedisCounters:
    """One script call per hit; a connection pool shared by the process's requests."""

    def __init__(self, config: RateLimitConfig, url: str, timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._script = self._client.register_script(SCRIPTS[config.algorithm])
        self._args = (config.limit, max(1, round(config.window * 1000)))
        self._prefix = f"{config.key_prefix}:{config.name}:"

    async def hit(self, key: str) -> Verdict:
        allowed, remaining, reset = await self._script(keys=[self._prefix + key], args=self._args)
        return Verdict(bool(allowed), int(remaining), int(reset))

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


class MemoryCounters:
    """The same algorithms in this process (one replica, or a limit per worker)."""

    SWEEP_AT = 10_000
    """Entries kept before expired ones are dropped (bounds memory under many keys)."""

    def __init__(self, config: RateLimitConfig) -> None:
        self._limit = config.limit
        self._window = config.window
        self._algorithm = config.algorithm
        self._state: dict[str, list[float]] = {}

    async def hit(self, key: str) -> Verdict:
        now = time.monotonic()
        if len(self._state) >= self.SWEEP_AT:
            self._sweep(now)
        if self._algorithm == "fixed-window":
            return self._fixed(key, now)
        if self._algorithm == "sliding-window":
            return self._sliding(key, now)
        return self._bucket(key, now)

    def _fixed(self, key: str, now: float) -> Verdict:
        entry = self._state.get(key)
        if entry is None or now >= entry[1]:
            entry = self._state[key] = [0, now + self._window]
        entry[0] += 1
        reset = _ms(entry[1] - now)
        if entry[0] > self._limit:
            return Verdict(False, 0, reset)
        return Verdict(True, self._limit - int(entry[0]), reset)

    def _sliding(self, key: str, now: float) -> Verdict:
        w, limit = self._window, self._limit
        index = now // w
        entry = self._state.setdefault(key, [index, 0, 0, now + 2 * w])  # index, previous, current
        if entry[0] != index:
            entry[1] = entry[2] if entry[0] == index - 1 else 0
            entry[0], entry[2] = index, 0
        entry[3] = now + 2 * w
        elapsed = now - index * w
        weighted = entry[1] * (w - elapsed) / w + entry[2]
        if weighted + 1 > limit:
            wait = w - elapsed
            if entry[1] > 0 and entry[2] < limit:
                wait = max(0.001, w - elapsed - (limit - 1 - entry[2]) * w / entry[1])
            return Verdict(False, 0, _ms(wait))
        entry[2] += 1
        return Verdict(True, int(limit - weighted - 1), _ms(w - elapsed))

    def _bucket(self, key: str, now: float) -> Verdict:
        capacity, w = self._limit, self._window
        entry = self._state.setdefault(key, [capacity, now, now + w])  # tokens, at, expiry
        tokens = min(capacity, entry[0] + (now - entry[1]) * capacity / w)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        entry[0], entry[1], entry[2] = tokens, now, now + w
        reset = (capacity - tokens) * w / capacity if allowed else (1 - tokens) * w / capacity
        return Verdict(allowed, int(tokens), _ms(reset))

    def _sweep(self, now: float) -> None:
        for key in [key for key, entry in self._state.items() if entry[-1] <= now]:
            del self._state[key]


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000 + 0.999))

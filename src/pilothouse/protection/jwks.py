"""The JWT verification keys of `[protection.auth]`: a JWKS URL's key set, cached, or one key
from a file or a secret. Keys are parsed by PyJWT (`PyJWKSet`, `PyJWK`).

Fetched with httpx's async client rather than PyJWT's `PyJWKClient`, which fetches with blocking
urllib inside the request (it would stall the event loop for every request while the identity
provider is slow) and, once its cache lifespan ends, fails every token if the endpoint is down.
Here: the set is refreshed when older than `jwks_refresh`; an unknown `kid` triggers a refresh
at most once per `jwks_min_interval` (a flood of made-up kids is one fetch); one fetch at a time
(single flight); a failed fetch keeps the keys already known (an outage of the identity provider
does not log everyone out) while new kids fail closed; the set is bounded (`MAX_KEYS`,
`MAX_BYTES`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

log = logging.getLogger("pilothouse.protection")

MAX_KEYS = 50
MAX_BYTES = 256 * 1024


class KeyUnavailable(Exception):
    """No key for this token (unknown kid, or none could be fetched)."""


class JwksKeys:
    """The key set of one JWKS URL."""

    def __init__(self, url: str, refresh: float, min_interval: float, timeout: float = 3.0) -> None:
        self._url = url
        self._refresh = refresh
        self._min_interval = min_interval
        self._timeout = timeout
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -float("inf")  # last successful fetch (monotonic)
        self._tried_at = -float("inf")  # last attempt
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None, algorithm: str) -> PyJWK:
        now = time.monotonic()
        stale = now - self._fetched_at > self._refresh
        found = self._keys.get(kid) if kid is not None else self._only_key()
        if found is None or stale:
            await self._fetch()
            found = self._keys.get(kid) if kid is not None else self._only_key()
        if found is None:
            raise KeyUnavailable(f"no key with kid {kid!r}")
        return found

    def _only_key(self) -> PyJWK | None:
        """A token without `kid` is accepted only when the set has exactly one key."""
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _fetch(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._tried_at < self._min_interval:
                return  # fetched (or tried) just now, e.g. by the request this one waited for
            self._tried_at = now
            try:
                async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                    response = await client.get(self._url, headers={"accept": "application/json"})
                response.raise_for_status()
                if len(response.content) > MAX_BYTES:
                    raise ValueError(f"key set larger than {MAX_BYTES} bytes")
                keys = _parse(response.json())
            except (httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
                known = f"keeping the {len(self._keys)} keys known" if self._keys else "no keys known"
                log.warning("JWKS fetch from %s failed (%s); %s", self._url, type(exc).__name__, known)
                return
            self._keys = keys
            self._fetched_at = now


def _parse(document: Any) -> dict[str, PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    if len(document["keys"]) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    usable = [k for k in document["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    keys = PyJWKSet.from_dict({"keys": usable}).keys
    return {key.key_id or "": key for key in keys}


class StaticKey:
    """One key from a file or a secret: a PEM public key, or an HMAC secret for HS*; bound to
    each allowed algorithm (a `PyJWK` verifies with its own algorithm only)."""

    def __init__(self, material: str, algorithms: list[str]) -> None:
        self._keys = {algorithm: PyJWK.from_dict(_jwk(material, algorithm)) for algorithm in algorithms}

    async def key(self, kid: str | None, algorithm: str) -> PyJWK:
        found = self._keys.get(algorithm)
        if found is None:
            raise KeyUnavailable(f"algorithm {algorithm!r} is not allowed")
        return found


def _jwk(material: str, algorithm: str) -> dict[str, Any]:
    """A JWK for the material, so both sources verify through the same `PyJWK` path (which
    binds the key to its algorithm family: an RSA key never verifies an HS256 token)."""
    from jwt.algorithms import get_default_algorithms

    implementation = get_default_algorithms()[algorithm]
    if algorithm.startswith("HS"):
        import base64

        secret = base64.urlsafe_b64encode(material.encode()).rstrip(b"=").decode()
        return {"kty": "oct", "k": secret, "alg": algorithm}
    loaded = implementation.prepare_key(material.encode())
    jwk: dict[str, Any] = implementation.to_jwk(loaded, as_dict=True)
    jwk["alg"] = algorithm
    return jwk

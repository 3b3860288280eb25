"""Authentication (`[protection.auth]`, opt-in): a bearer JWT (verified by PyJWT against the
configured keys, issuer, audience, algorithm allow-list and leeway; `exp` required) or an API key
from a secret, on the paths it names.

Answers follow RFC 6750: no credentials → 401 with `WWW-Authenticate: Bearer realm="..."`; a
bad token → 401 with `error="invalid_token"`; a valid token without a scope the path requires →
403 with `error="insufficient_scope"`. The reason a token was refused is logged (never the
token) and not told to the client beyond that. The proven subject and scopes go into the ASGI
scope's `state` (`principal.Principal`, for the app and the rate limiter's `key = "subject"`)
and onto the request's log lines (`subject`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

import jwt
from jwt import PyJWK

from pilothouse.asgi import ASGIApp, Receive, Scope, Send
from pilothouse.config.protection import AuthConfig
from pilothouse.metrics import Metrics
from pilothouse.protection.jwks import KeyUnavailable
from pilothouse.protection.paths import path_matcher
from pilothouse.protection.principal import STATE_KEY, Principal
from pilothouse.protection.refusals import Refusals, log
from pilothouse.telemetry.context import current_request


class Keys(Protocol):
    async def key(self, kid: str | None, algorithm: str) -> PyJWK: ...


class Refused(Exception):
    """A credential was presented and is not good; the message is for the log only."""


def api_key_table(secret: str) -> dict[bytes, str]:
    """sha256(key) → subject from the secret's lines ('subject:key' or just 'key'). Looked up by
    digest, so the comparison never runs over the key's bytes one by one."""
    table: dict[bytes, str] = {}
    for line in secret.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        subject, _, key = line.rpartition(":")
        digest = hashlib.sha256(key.encode()).digest()
        table[digest] = subject or f"api-key-{digest.hex()[:8]}"
    return table


def _peek_header(token: str) -> dict[str, Any]:
    """The JOSE header's `alg` and `kid`, to pick the key: only a hint, since `jwt.decode`
    parses and checks the whole token again. (PyJWT's `get_unverified_header` decodes and
    validates every segment, character by character: it doubled the cost of a verification.)"""
    segment = token.partition(".")[0]
    if len(segment) > 2048:
        raise Refused("header too large")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise Refused("malformed header") from None
    if not isinstance(header, dict):
        raise Refused("malformed header")
    return header


class AuthMiddleware:
    """Requires credentials on the configured paths; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        config: AuthConfig,
        keys: Keys | None,
        api_keys: Callable[[], dict[bytes, str]] | None,
        metrics: Metrics | None,
    ) -> None:
        self.app = app
        self._protected = path_matcher(config.paths)
        self._public = path_matcher(config.public_paths) if config.public_paths else None
        self._scopes = [(path_matcher([path]), frozenset(scopes)) for path, scopes in config.scopes.items()]
        self._keys = keys
        self._api_keys = api_keys
        self._api_key_header = config.api_key_header.lower().encode()
        self._algorithms = list(config.algorithms)
        self._issuer = config.issuer
        self._audience = config.audience
        self._leeway = config.leeway
        self._realm = config.realm.replace('"', "")
        self._refusals = Refusals(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)  # CORS preflights carry no credentials
            return
        path = scope["path"]
        if not self._protected(path) or (self._public is not None and self._public(path)):
            await self.app(scope, receive, send)
            return
        token: str | None = None
        api_key: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    token = credentials.strip()
            elif name == self._api_key_header:
                api_key = value
        try:
            if token is not None and self._keys is not None:
                principal = await self._verify(token)
            elif api_key is not None and self._api_keys is not None:
                principal = self._api_key(api_key)
            else:
                await self._deny(send, scope, 401, "unauthenticated", "", "no credentials")
                return
        except Refused as exc:
            await self._deny(send, scope, 401, "invalid_credentials", ', error="invalid_token"', str(exc))
            return
        for matches, required in self._scopes:
            if matches(path) and not required <= principal.scopes:
                missing = " ".join(sorted(required - principal.scopes))
                challenge = f', error="insufficient_scope", scope="{missing}"'
                await self._deny(
                    send, scope, 403, "insufficient_scope", challenge, f"{principal.subject} lacks {missing}"
                )
                return
        scope.setdefault("state", {})[STATE_KEY] = principal
        request = current_request.get()
        if request is not None:
            request.subject = principal.subject
        await self.app(scope, receive, send)

    async def _verify(self, token: str) -> Principal:
        assert self._keys is not None
        try:
            header = _peek_header(token)
            algorithm = header.get("alg")
            if algorithm not in self._algorithms:  # "none" and every algorithm not allowed
                raise Refused(f"algorithm {algorithm!r} not allowed")
            key = await self._keys.key(header.get("kid"), algorithm)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except KeyUnavailable as exc:
            raise Refused(str(exc)) from None
        except jwt.PyJWTError as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from None
        scopes = claims.get("scope", "")
        names = set(scopes.split()) if isinstance(scopes, str) else set()
        scp = claims.get("scp")
        if isinstance(scp, list):
            names.update(str(item) for item in scp)
        return Principal(str(claims["sub"]), frozenset(names), "jwt")

    def _api_key(self, value: bytes) -> Principal:
        assert self._api_keys is not None
        subject = self._api_keys().get(hashlib.sha256(value).digest())
        if subject is None:
            raise Refused("unknown API key")
        return Principal(subject, frozenset(), "api-key")

    async def _deny(self, send: Send, scope: Scope, status: int, reason: str, error: str, why: str) -> None:
        if scope["type"] == "websocket":  # closing before accept: the server answers 403
            self._refusals.count(reason)
            log.info("refused websocket %s: %s (%s)", scope["path"], reason, why)
            await send({"type": "websocket.close", "code": 1008})
            return
        challenge = f'Bearer realm="{self._realm}"{error}'.encode()
        await self._refusals.refuse(send, scope, status, reason, [(b"www-authenticate", challenge)], why)

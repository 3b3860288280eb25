"""`[protection]`: what guards the app port — safe error bodies, security headers, trusted
proxies, request limits and time limits (on by default where safe)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef, url_of
from pilothouse.durations import Duration
from pilothouse.sizes import Size

# A header value as HTTP allows it (RFC 9110 field-value): visible ASCII, inner spaces; no
# leading or trailing space, no line end (`$` would let one through). Written into response heads
# as it is on h11 (`runtime.wire_headers`).
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
_PATH_PATTERN = re.compile(r"^/[\x21-\x7e]*$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _path_pattern(value: str) -> str:
    if not _PATH_PATTERN.match(value):
        raise ValueError(f"{value!r}: expected a path pattern starting with '/', e.g. '/api/*'")
    return value


def _positive_size(value: int) -> int:
    if value <= 0:
        raise ValueError("expected a size greater than 0")
    return value


def _positive_time(value: float) -> float:
    if value <= 0:
        raise ValueError("expected a time limit greater than 0s")
    return value


PathPattern = Annotated[str, AfterValidator(_path_pattern)]
"""'/api/*': `*` matches any characters."""
PositiveSize = Annotated[Size, AfterValidator(_positive_size)]
TimeLimit = Annotated[Duration, AfterValidator(_positive_time)]


class ErrorsConfig(Section):
    """An unhandled exception becomes an RFC 9457 problem+json 500 (no traceback, no message)."""

    enabled: bool = True


class HeadersConfig(Section):
    """Security response headers; an empty string turns one off. A header the app set itself is
    never replaced. HSTS is sent only for requests that arrived over TLS."""

    enabled: bool = True
    x_content_type_options: str = "nosniff"
    referrer_policy: str = "strict-origin-when-cross-origin"
    content_security_policy: str = "frame-ancestors 'none'"
    x_frame_options: str = ""
    strict_transport_security: str = "max-age=31536000; includeSubDomains"
    error_cache_control: str = "no-store"
    """Cache-Control for responses with status 400 and above."""
    server: str = ""
    """The `Server` header `pilothouse serve` sends on the app port; empty: none (uvicorn's own
    `Server: uvicorn` stays off). Sent by the server, so `enabled` does not affect it."""

    @field_validator(
        "server",
        "x_content_type_options",
        "referrer_policy",
        "content_security_policy",
        "x_frame_options",
        "strict_transport_security",
        "error_cache_control",
    )
    @classmethod
    def _value(cls, value: str) -> str:
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError("expected a printable ASCII header value without surrounding spaces")
        return value


class RouteLimits(Section):
    """Limits for requests whose path matches `path` ('*' matches any characters, '/api/*')."""

    path: PathPattern
    max_body_size: PositiveSize | None = None
    time_limit: TimeLimit | None = None


class LimitsConfig(Section):
    """Request size and time limits. Generous by default: they stop abuse, not uploads."""

    enabled: bool = True
    max_body_size: PositiveSize = 10 * 2**20
    max_header_size: PositiveSize = 64 * 2**10
    max_header_count: Annotated[int, Field(ge=1, le=10_000)] = 100
    time_limit: TimeLimit = 60.0
    timeout_status: Literal[503, 504] = 504
    routes: list[RouteLimits] = Field(default_factory=list)
    """Per-route overrides, first match wins."""


_LIMIT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KEY = re.compile(r"^(client|subject|header:[A-Za-z0-9-]+)$")


class RateLimitConfig(Section):
    """`limit` requests per `window` for each key (client address, a header such as an API key,
    or the authenticated subject) on the paths matching `paths`. Opt-in."""

    name: str
    paths: list[PathPattern] = Field(default_factory=lambda: ["/*"])
    key: str = "client"
    limit: Annotated[int, Field(ge=1)]
    window: Duration
    algorithm: Literal["fixed-window", "sliding-window", "token-bucket"] = "fixed-window"
    storage: Literal["memory", "redis"] = "memory"
    redis_url: str | SecretRef | None = None
    on_backend_error: Literal["open", "closed"] = "closed"
    """When Redis cannot be reached: let requests through ("open") or answer 503 ("closed")."""
    key_prefix: str = "pilothouse:ratelimit"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _LIMIT_NAME.match(value):
            raise ValueError("expected a lowercase name of letters, digits, '-' or '_' (max 63)")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.match(value):
            raise ValueError("expected 'client', 'subject' or 'header:NAME' (e.g. 'header:X-API-Key')")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: float) -> float:
        if value < 0.001:
            raise ValueError("expected a window of at least 1ms")
        return value

    _redis_url = field_validator("redis_url")(url_of("redis", "rediss", "unix"))

    @model_validator(mode="after")
    def _redis_needs_url(self) -> RateLimitConfig:
        if self.storage == "redis" and self.redis_url is None:
            raise ValueError("storage = 'redis' needs redis_url (a URL or { secret = ... })")
        return self


ASYMMETRIC_ALGORITHMS = frozenset(
    ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
)
SYMMETRIC_ALGORITHMS = frozenset(("HS256", "HS384", "HS512"))


class AuthConfig(Section):
    """Bearer JWT verification (keys from a JWKS URL, a file or a secret) and/or API keys from a
    secret, required on the paths matching `paths`. Opt-in."""

    paths: list[PathPattern] = Field(default_factory=lambda: ["/*"])
    public_paths: list[PathPattern] = Field(default_factory=list)
    """Exceptions inside `paths` that need no credentials (e.g. '/api/health')."""
    jwks_url: str | None = None
    key_file: str | None = None
    key: SecretRef | None = None
    """An HMAC secret or a PEM public key, from the secrets layer."""
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    leeway: Duration = 30.0
    jwks_refresh: Duration = 300.0
    """How old the cached key set may get before it is fetched again (kept if the fetch fails)."""
    jwks_min_interval: Duration = 10.0
    """At most one fetch per interval for unknown `kid`s (a flood of made-up kids stays one fetch)."""
    scopes: dict[PathPattern, list[str]] = Field(default_factory=dict)
    """Path pattern -> scopes the token must carry (all of them), e.g. {"/admin/*" = ["admin"]}."""
    api_keys: SecretRef | None = None
    """A secret holding one API key per line, optionally 'subject:key'."""
    api_key_header: str = "X-API-Key"
    realm: str = "api"

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one algorithm, e.g. ['RS256']")
        for name in value:
            if name.lower() == "none":
                raise ValueError("'none' is never accepted: an unsigned token proves nothing")
            if name not in ASYMMETRIC_ALGORITHMS | SYMMETRIC_ALGORITHMS:
                known = ", ".join(sorted(ASYMMETRIC_ALGORITHMS | SYMMETRIC_ALGORITHMS))
                raise ValueError(f"unknown algorithm {name!r}; expected one of {known}")
        if set(value) & SYMMETRIC_ALGORITHMS and set(value) & ASYMMETRIC_ALGORITHMS:
            raise ValueError(
                "HMAC (HS*) and public-key algorithms must not be mixed: a public key would "
                "verify as an HMAC secret (algorithm confusion)"
            )
        return value

    _jwks_url = field_validator("jwks_url")(url_of("https", "http"))

    @field_validator("api_key_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9-]+$", value):
            raise ValueError("expected an HTTP header name such as 'X-API-Key'")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> AuthConfig:
        sources = [name for name in ("jwks_url", "key_file", "key") if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"give one JWT key source, not {' and '.join(sources)}")
        if not sources and self.api_keys is None:
            raise ValueError("expected jwks_url, key_file or key (JWT) and/or api_keys")
        if self.jwks_url is not None and set(self.algorithms) & SYMMETRIC_ALGORITHMS:
            raise ValueError("a JWKS URL publishes public keys: use RS*/PS*/ES*/EdDSA algorithms")
        return self


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class CorsConfig(Section):
    """Cross-origin requests from browsers: an allow-list of origins. Opt-in."""

    allow_origins: list[str]
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "HEAD", "POST"])
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    max_age: Duration = 600.0

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one origin such as 'https://app.example.com'")
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r}: expected an origin such as 'https://app.example.com' (no path)"
                )
        return value

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_origins = ['*'] with allow_credentials = true would let every site make "
                "credentialed requests; list the origins"
            )
        return self


class ProtectionConfig(Section):
    """Everything that guards the app port (docs/protection.md)."""

    trusted_proxies: list[str] = Field(default_factory=list)
    """Networks ('10.0.0.0/8', '127.0.0.1') whose `Forwarded` / `X-Forwarded-*` headers are
    believed; from any other peer they are ignored."""
    errors: ErrorsConfig = Field(default_factory=ErrorsConfig)
    headers: HeadersConfig = Field(default_factory=HeadersConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    rate_limits: list[RateLimitConfig] = Field(default_factory=list)
    auth: AuthConfig | None = None
    cors: CorsConfig | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP network such as '10.0.0.0/8' or '127.0.0.1'"
                ) from None
        return value

    def proxy_networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(item) for item in self.trusted_proxies)

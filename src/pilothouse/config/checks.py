"""`[[checks]]`: the dependencies readiness depends on, one model per kind."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef, http_url, url_of
from pilothouse.durations import Duration
from pilothouse.sizes import SIZE_FACTORS

_CHECK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(%|B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)$")


class _Check(Section):
    name: str
    critical: bool = True
    timeout: Duration | None = Field(default=None, description="defaults to [probes].check_timeout")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _CHECK_NAME.match(value):
            raise ValueError("expected a lowercase name of letters, digits, '-' or '_' (max 63)")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("expected a timeout greater than 0s (like [probes].check_timeout)")
        return value


class PostgresCheck(_Check):
    """`SELECT 1` over a fresh psycopg 3 connection."""

    kind: Literal["postgres"]
    url: SecretRef | str

    _postgres_url = field_validator("url")(url_of("postgresql", "postgres"))


class RedisCheck(_Check):
    """`PING` on a Redis server."""

    kind: Literal["redis"]
    url: SecretRef | str

    _redis_url = field_validator("url")(url_of("redis", "rediss", "unix"))


class HttpCheck(_Check):
    """GET a URL; pass when the status is in `expect_status` (default: any 2xx)."""

    kind: Literal["http"]
    url: str
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)

    _http_url = field_validator("url")(http_url)


class TcpCheck(_Check):
    """Open a TCP connection to host:port."""

    kind: Literal["tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]


class DiskCheck(_Check):
    """Free space at `path` must be at least `min_free` ("10%", "1GiB")."""

    kind: Literal["disk"]
    path: str = "/"
    min_free: str = "5%"

    @field_validator("min_free")
    @classmethod
    def _size(cls, value: str) -> str:
        match = _SIZE.match(value.strip())
        if not match or (match.group(2) == "%" and not 0 < float(match.group(1)) < 100):
            raise ValueError("expected a percentage like '10%' or a size like '500MiB' or '2GiB'")
        return value

    def threshold(self, total_bytes: int) -> int:
        """Minimum free bytes for a filesystem of `total_bytes`."""
        match = _SIZE.match(self.min_free.strip())
        assert match is not None
        number, unit = float(match.group(1)), match.group(2)
        if unit == "%":
            return int(total_bytes * number / 100)
        return int(number * SIZE_FACTORS[unit])


class FreshnessCheck(_Check):
    """A timestamp the app updates must be younger than `max_age`.

    The timestamp is either an in-process marker (`pilothouse.freshness.touch(marker)`) or a
    file's modification time (`file = "/var/lib/shop/last-sync"`).
    """

    kind: Literal["freshness"]
    max_age: Duration
    marker: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FreshnessCheck:
        if (self.marker is None) == (self.file is None):
            raise ValueError("set exactly one of 'marker' or 'file'")
        return self


class PythonCheck(_Check):
    """Any callable, sync or async: `target = "module:function"`, or one registered with
    `@pilothouse.check("name")` when `target` is omitted."""

    kind: Literal["python"]
    target: str | None = None

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[\w.]+:[\w.]+$", value):
            raise ValueError("expected 'package.module:function'")
        return value


CheckConfig = Annotated[
    PostgresCheck | RedisCheck | HttpCheck | TcpCheck | DiskCheck | FreshnessCheck | PythonCheck,
    Field(discriminator="kind"),
]
"""One `[[checks]]` entry; `kind` selects the model."""

"""Security response headers (`[protection.headers]`), added to the app's responses.

The values are encoded once at startup; per response the app's own header names are looked at
once, and a header the app set itself is never replaced. Strict-Transport-Security goes only on
responses to requests that arrived over TLS (the scheme after trusted-proxy resolution): a
plain-HTTP answer carrying it is ignored by browsers (RFC 6797 §8.1) and misleads readers.
"""

from __future__ import annotations

from collections.abc import Iterable

from pilothouse.config.protection import HeadersConfig

Header = tuple[bytes, bytes]


class SecurityHeaders:
    """The headers to add, precomputed for plain and TLS requests."""

    __slots__ = ("_error_cache", "_names", "_plain", "_tls")

    def __init__(self, config: HeadersConfig) -> None:
        always = [
            (b"x-content-type-options", config.x_content_type_options),
            (b"referrer-policy", config.referrer_policy),
            (b"content-security-policy", config.content_security_policy),
            (b"x-frame-options", config.x_frame_options),
        ]
        self._plain: tuple[Header, ...] = tuple((name, value.encode()) for name, value in always if value)
        hsts = config.strict_transport_security
        self._tls = self._plain + (((b"strict-transport-security", hsts.encode()),) if hsts else ())
        cache = config.error_cache_control
        self._error_cache: Header | None = (b"cache-control", cache.encode()) if cache else None
        self._names = frozenset(name for name, _ in self._tls) | {b"cache-control"}

    def fixed(self, tls: bool) -> tuple[Header, ...]:
        """The headers added to every response (not the error Cache-Control)."""
        return self._tls if tls else self._plain

    def add(self, headers: Iterable[Header], status: int, tls: bool) -> list[Header]:
        """`headers` (the app's) followed by every configured header the app did not set.

        The common case (the app set none of them) is one set lookup per app header: names are
        lowercased only when they are not lowercase already (ASGI apps send lowercase names)."""
        result = list(headers)
        names = self._names
        for name, _ in result:
            if name in names or (not name.islower() and name.lower() in names):
                return self._merge(result, status, tls)
        result += self._tls if tls else self._plain
        if status >= 400 and self._error_cache is not None:
            result.append(self._error_cache)
        return result

    def _merge(self, result: list[Header], status: int, tls: bool) -> list[Header]:
        """`add` when the app set some of the headers itself: those are kept, not replaced."""
        present = {lower for name, _ in result if (lower := name.lower()) in self._names}
        result += [header for header in self.fixed(tls) if header[0] not in present]
        if status >= 400 and self._error_cache is not None and b"cache-control" not in present:
            result.append(self._error_cache)
        return result

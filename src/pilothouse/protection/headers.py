"""Security response headers (`[protection.headers]`), added to the app's responses.

The values are encoded once at startup; per response the app's own header names are looked at
once, and a header the app set itself is never replaced. Strict-Transport-Security goes only on
responses to requests that arrived over TLS (the scheme after trusted-proxy resolution): a
plain-HTTP answer carrying it is ignored by browsers (RFC 6797 §8.1) and misleads readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pilothouse.config.protection import HeadersConfig
from pilothouse.runtime.wire_headers import header_lines

Header = tuple[bytes, bytes]

OTHERS_MAX = 256


class SecurityHeaders:
    """The headers to add, precomputed for plain and TLS requests."""

    __slots__ = ("_error_cache", "_lines", "_names", "_plain_error", "_tls_error", "plain", "seen", "tls")

    def __init__(self, config: HeadersConfig) -> None:
        always = [
            (b"x-content-type-options", config.x_content_type_options),
            (b"referrer-policy", config.referrer_policy),
            (b"content-security-policy", config.content_security_policy),
            (b"x-frame-options", config.x_frame_options),
        ]
        self.plain: tuple[Header, ...] = tuple((name, value.encode()) for name, value in always if value)
        hsts = config.strict_transport_security
        self.tls = self.plain + (((b"strict-transport-security", hsts.encode()),) if hsts else ())
        cache = config.error_cache_control
        self._error_cache: Header | None = (b"cache-control", cache.encode()) if cache else None
        error = (self._error_cache,) if self._error_cache is not None else ()
        self._plain_error, self._tls_error = self.plain + error, self.tls + error
        self._names = frozenset(name for name, _ in self.tls) | {b"cache-control"}
        # App header names seen that are none of `_names` (in any case), filled by `_ours`; the
        # middleware's inline common case reads it and `plain`/`tls` too.
        self.seen: set[bytes] = set()
        # The four usual sets as header lines (`lines`), by the tuple's identity: no hashing.
        usual = (self.plain, self.tls, self._plain_error, self._tls_error)
        self._lines = {id(added): header_lines(added) for added in usual}

    def fixed(self, tls: bool) -> tuple[Header, ...]:
        """The headers added to every response (not the error Cache-Control)."""
        return self.tls if tls else self.plain

    def add(self, headers: Iterable[Header], status: int, tls: bool) -> list[Header]:
        """A new list: `headers` (the app's) followed by every configured header the app did not
        set.

        The common case (the app set none of them) is one set lookup per app header, in the names
        seen before that are none of ours (`seen`, filled by `_ours`), and one list built."""
        if headers.__class__ is not list:  # iterated twice below: a one-shot iterable is read once
            headers = list(headers)
        return [*headers, *self._added(headers, status, tls)]

    def lines(self, headers: Iterable[Header], status: int, tls: bool) -> bytes:
        """The headers `add` would append, as `name: value\r\n` lines for the connection
        (`runtime.wire_headers`; the values were checked when the config loaded)."""
        if headers.__class__ is not list:
            headers = list(headers)
        added = self._added(headers, status, tls)
        return self._lines.get(id(added)) or header_lines(added)

    def _added(self, headers: list[Header], status: int, tls: bool) -> Sequence[Header]:
        """The configured headers the app did not set. The common case (it set none of them) is
        one set lookup per app header, in the names seen before that are none of ours (`seen`,
        filled by `_ours`), and a tuple made at startup."""
        others = self.seen
        for name, _ in headers:
            if name not in others and self._ours(name):
                return self._missing(headers, status, tls)
        if status < 400:
            return self.tls if tls else self.plain
        return self._tls_error if tls else self._plain_error

    def _ours(self, name: bytes) -> bool:
        """Whether `name` is one of the added headers, in any case; a name that is not is
        remembered (at most `OTHERS_MAX` of them), so the next response's check is one set lookup."""
        if name in self._names or name.lower() in self._names:
            return True
        if len(self.seen) < OTHERS_MAX:
            self.seen.add(name)
        return False

    def _missing(self, headers: list[Header], status: int, tls: bool) -> list[Header]:
        """`_added` when the app set some of the headers itself: those are kept, not replaced."""
        present = {lower for name, _ in headers if (lower := name.lower()) in self._names}
        missing = [header for header in self.fixed(tls) if header[0] not in present]
        if status >= 400 and self._error_cache is not None and b"cache-control" not in present:
            missing.append(self._error_cache)
        return missing

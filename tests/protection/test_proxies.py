"""Trusted proxies: the client address and scheme the app (and the rate limiter, logs and HSTS)
see come from `Forwarded` / `X-Forwarded-*` only when the peer is a configured proxy. Against a
real `pilothouse serve` (the peer is 127.0.0.1), plus the header parsing cases in process."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from pilothouse.protection.proxies import TrustedProxies
from tests.protection.conftest import Serve


def test_forwarded_headers_from_a_trusted_proxy(serve: Serve) -> None:
    service = serve('[protection]\ntrusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]\n')
    url = f"{service.app_url}/client"
    # A client-supplied entry on the left proves nothing: the rightmost untrusted hop is the client.
    xff = httpx.get(
        url, headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.2.3", "X-Forwarded-Proto": "https"}
    )
    assert xff.json() == {"client": "203.0.113.9", "scheme": "https"}
    forwarded = httpx.get(url, headers={"Forwarded": 'for="[2001:db8::7]:4711";proto=https, for=10.0.0.2'})
    assert forwarded.json() == {"client": "2001:db8::7", "scheme": "https"}


def test_forwarded_headers_from_anyone_else_are_ignored(serve: Serve) -> None:
    service = serve('[protection]\ntrusted_proxies = ["10.0.0.0/8"]\n')
    response = httpx.get(
        f"{service.app_url}/client", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    )
    assert response.json() == {"client": "127.0.0.1", "scheme": "http"}


def test_no_trusted_proxies_by_default(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/client", headers={"Forwarded": "for=203.0.113.9;proto=https"})
    assert response.json() == {"client": "127.0.0.1", "scheme": "http"}


@pytest.mark.parametrize(
    "headers,expected",
    [
        ([(b"x-forwarded-for", b"203.0.113.9")], ("203.0.113.9", "http")),
        ([(b"x-forwarded-for", b"10.0.0.1, 10.0.0.2")], ("10.0.0.1", "http")),  # all trusted: leftmost
        ([(b"forwarded", b"for=unknown;proto=https")], ("10.0.0.5", "https")),  # obfuscated: keep peer
        ([(b"forwarded", b"for=192.0.2.60:8080;proto=wss")], ("192.0.2.60", "wss")),
        ([(b"forwarded", b"for=192.0.2.60;proto=gopher")], ("192.0.2.60", "http")),  # unknown scheme ignored
        ([(b"x-forwarded-proto", b"https")], ("10.0.0.5", "https")),  # scheme only: the peer stays
    ],
)
def test_header_forms(headers: list[tuple[bytes, bytes]], expected: tuple[str, str]) -> None:
    proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])
    scope = {"client": ("10.0.0.5", 5000), "scheme": "http", "headers": headers}
    proxies.resolve(scope)
    assert (scope["client"][0], scope["scheme"]) == expected

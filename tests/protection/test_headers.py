"""Security headers against a real `pilothouse serve`: the defaults on every response, the app's
own values kept, each header turned off or overridden, HSTS only over TLS (here: TLS terminated
by a trusted proxy, which says so in `X-Forwarded-Proto` / `Forwarded`), no-store on errors."""

from __future__ import annotations

import httpx

from tests.protection.conftest import Serve

DEFAULTS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "frame-ancestors 'none'",
}


def test_defaults_on_every_response_and_no_hsts_over_plain_http(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/client")
    assert response.status_code == 200
    for name, value in DEFAULTS.items():
        assert response.headers.get_list(name) == [value]
    assert "strict-transport-security" not in response.headers
    assert "x-frame-options" not in response.headers
    assert "cache-control" not in response.headers  # a success: the app decides caching
    # An untrusted peer claiming TLS gets no HSTS either.
    spoofed = httpx.get(f"{service.app_url}/client", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in spoofed.headers


def test_app_set_headers_are_never_replaced(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/own-headers")
    assert response.headers.get_list("content-security-policy") == ["default-src 'self'"]
    assert response.headers.get_list("referrer-policy") == ["no-referrer"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_error_responses_are_not_cached(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/no-such-route")
    assert response.status_code == 404
    assert response.headers.get_list("cache-control") == ["no-store"]


def test_each_header_can_be_turned_off_or_overridden(serve: Serve) -> None:
    service = serve(
        '[protection.headers]\ncontent_security_policy = ""\nx_frame_options = "DENY"\n'
        'referrer_policy = "no-referrer"\nerror_cache_control = ""\n'
    )
    response = httpx.get(f"{service.app_url}/no-such-route")
    assert "content-security-policy" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "cache-control" not in response.headers


def test_hsts_when_a_trusted_proxy_terminated_tls(serve: Serve) -> None:
    service = serve('[protection]\ntrusted_proxies = ["127.0.0.1/32"]\n')
    hsts = "max-age=31536000; includeSubDomains"
    by_xfp = httpx.get(f"{service.app_url}/client", headers={"X-Forwarded-Proto": "https"})
    assert by_xfp.headers["strict-transport-security"] == hsts
    by_forwarded = httpx.get(
        f"{service.app_url}/client", headers={"Forwarded": "for=198.51.100.7;proto=https"}
    )
    assert by_forwarded.headers["strict-transport-security"] == hsts
    plain = httpx.get(f"{service.app_url}/client", headers={"X-Forwarded-Proto": "http"})
    assert "strict-transport-security" not in plain.headers


def test_no_server_header_unless_one_is_configured(serve: Serve) -> None:
    """uvicorn announces itself (`Server: uvicorn`) unless told not to; `serve` does not, on the
    app's answers and on the protection layer's own, and sends the value configured in
    `[protection.headers] server`. uvicorn's `Date` stays."""
    quiet = serve("")
    responses = [
        httpx.get(f"{quiet.app_url}/client"),
        httpx.get(f"{quiet.app_url}/no-such-route"),
        httpx.get(f"{quiet.app_url}/client", headers={f"X-Filler-{n}": "1" for n in range(120)}),
    ]
    assert [response.status_code for response in responses] == [200, 404, 431]
    for response in responses:
        assert "server" not in response.headers, response.status_code
        assert response.headers.get_list("date") != []
    named = serve('[protection.headers]\nserver = "shop"\n')
    response = httpx.get(f"{named.app_url}/client")
    assert response.headers.get_list("server") == ["shop"]
    assert response.headers.get_list("date") != []


def test_headers_can_all_be_turned_off(serve: Serve) -> None:
    service = serve("[protection.headers]\nenabled = false\n")
    response = httpx.get(f"{service.app_url}/client")
    for name in DEFAULTS:
        assert name not in response.headers


def test_app_headers_in_any_case_are_kept() -> None:
    """A raw ASGI app may send mixed-case names; the fast path (lowercase names) must not miss
    them. In process: the real `SecurityHeaders` on what such an app sends."""
    from pilothouse.config.protection import HeadersConfig
    from pilothouse.protection.headers import SecurityHeaders

    headers = SecurityHeaders(HeadersConfig())
    sent = headers.add([(b"Referrer-Policy", b"no-referrer"), (b"content-length", b"2")], 500, False)
    names = [name.lower() for name, _ in sent]
    assert names.count(b"referrer-policy") == 1 and (b"Referrer-Policy", b"no-referrer") in sent
    assert {b"x-content-type-options", b"content-security-policy", b"cache-control"} <= set(names)
    plain = headers.add([(b"content-length", b"2")], 200, False)
    assert plain == [(b"content-length", b"2"), *headers.fixed(False)]


def test_names_remembered_as_not_ours_never_hide_ours() -> None:
    """`add` remembers the app's header names that are none of the added ones, so the next
    response checks each with one set lookup; a name that is ours, in any case, must never be
    remembered, or the second response carrying it would get the default added twice."""
    from pilothouse.config.protection import HeadersConfig
    from pilothouse.protection.headers import SecurityHeaders

    headers = SecurityHeaders(HeadersConfig())
    for _ in range(2):
        for name in (b"Referrer-Policy", b"referrer-policy"):
            sent = headers.add([(b"content-length", b"2"), (name, b"no-referrer")], 200, False)
            assert [n.lower() for n, _ in sent].count(b"referrer-policy") == 1
            assert (name, b"no-referrer") in sent


def test_headers_sent_as_a_one_shot_iterable_are_all_kept() -> None:
    """ASGI allows any iterable of pairs; the names are checked before the list is built, so a
    generator must be read once, not twice."""
    from pilothouse.config.protection import HeadersConfig
    from pilothouse.protection.headers import SecurityHeaders

    headers = SecurityHeaders(HeadersConfig())
    app_headers = [(b"content-length", b"2"), (b"content-type", b"text/plain")]
    for _ in range(2):  # the second time the names are remembered
        sent = headers.add((pair for pair in app_headers), 200, False)
        assert sent == [*app_headers, *headers.fixed(False)]


async def test_the_middleware_keeps_app_headers_on_every_response() -> None:
    """The middleware adds the headers itself in the common case (`add` inline); in process, the
    real middleware: an app header of ours in any case, on the first response and on later ones
    (when the app's other names are remembered), is kept and not added twice; headers sent as a
    one-shot iterable are all kept."""
    from typing import Any

    from pilothouse.config.model import Config
    from pilothouse.protection.middleware import ProtectionMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"0")]
        if scope["path"] == "/own":
            headers.append((b"Referrer-Policy", b"no-referrer"))
        sent = (pair for pair in headers) if scope["path"] == "/gen" else headers
        await send({"type": "http.response.start", "status": 200, "headers": sent})
        await send({"type": "http.response.body", "body": b""})

    config = Config.model_validate({"service": {"name": "t"}})
    middleware = ProtectionMiddleware(app, config.protection, None)
    for path in ("/plain", "/own", "/plain", "/own", "/gen"):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "scheme": "http", "headers": []}
        await middleware(scope, None, send)  # type: ignore[arg-type]
        names = [name.lower() for name, _ in sent[0]["headers"]]
        assert names.count(b"referrer-policy") == 1, path
        assert ((b"Referrer-Policy", b"no-referrer") in sent[0]["headers"]) == (path == "/own")
        assert b"x-content-type-options" in names and b"content-length" in names

"""CORS against a real `pilothouse serve` with authentication on: a preflight from an allowed
origin is answered without reaching the app (and without credentials), one from another origin
is refused, and responses (the 401 included) carry the headers for allowed origins only."""

from __future__ import annotations

import httpx

from tests.protection.conftest import Serve

CORS = """
[protection.cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["Authorization"]
allow_credentials = true

[protection.auth]
paths = ["/whoami"]
api_keys = { secret = "db.password" }
"""


def test_preflight_is_answered_without_reaching_the_app(serve: Serve) -> None:
    service = serve(CORS)
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization",
    }
    allowed = httpx.options(f"{service.app_url}/whoami", headers=preflight)
    # 200, not the app's 405 (its /whoami route takes GET only) and not authentication's 401:
    # the CORS layer answered, before either.
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    refused = httpx.options(
        f"{service.app_url}/whoami", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_responses_carry_cors_headers_for_allowed_origins_only(serve: Serve) -> None:
    service = serve(CORS)
    ok = httpx.get(f"{service.app_url}/client", headers={"Origin": "https://app.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    unauthenticated = httpx.get(f"{service.app_url}/whoami", headers={"Origin": "https://app.example.com"})
    assert unauthenticated.status_code == 401  # readable by the allowed page, so it can react
    assert unauthenticated.headers["access-control-allow-origin"] == "https://app.example.com"
    other = httpx.get(f"{service.app_url}/client", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers

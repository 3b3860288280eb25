"""Authentication against a real `pilothouse serve` and a JWKS endpoint the test controls:
valid tokens reach the app with their subject and scopes; expired, wrong-audience, wrong-issuer,
`alg: none`, HS256-with-the-RSA-public-key (algorithm confusion), unknown-kid and tampered
tokens are refused with 401 and `WWW-Authenticate`; a missing scope is 403; with the JWKS
endpoint down, cached keys keep working and new kids fail closed until it returns; API keys
from a secret; the token never reaches a log line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ROOT, ServeProcess, eventually, write_config
from tests.protection.conftest import BASE
from tests.protection.jwks_server import (
    JwksServer,
    SigningKey,
    hs256_with_public_key,
    tampered,
    unsigned_token,
)

API_KEYS = "partner-a:key-aaaaaaaaaaaaaaaaaaaaaaaa\nkey-anonymous-bbbbbbbbbbbbbbbb\n"
AUTH = """
[protection.auth]
paths = ["/whoami", "/admin/*"]
jwks_url = "{url}"
issuer = "https://idp.test/"
audience = "shop"
algorithms = ["RS256"]
jwks_refresh = "300ms"
jwks_min_interval = "100ms"
scopes = {{ "/admin/*" = ["admin"] }}
api_keys = {{ secret = "gateway.api-keys" }}
"""


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys.append(SigningKey("k1"))
    yield server
    server.close()


@pytest.fixture
def service(tmp_path, jwks: JwksServer) -> Iterator[ServeProcess]:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, BASE.format(extra=AUTH.format(url=jwks.url)))
    env = {"PYTHONPATH": str(ROOT), "SHOP_DB_PASSWORD": "unused-secret-1", "SHOP_GATEWAY_API_KEYS": API_KEYS}
    with ServeProcess(config, env=env, cwd=ROOT) as process:
        yield process


def get(
    service: ServeProcess, token: str | None = None, path: str = "/whoami", **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{service.app_url}{path}", headers=headers)


def test_valid_token_reaches_the_app_with_subject_and_scopes(service: ServeProcess, jwks: JwksServer) -> None:
    token = jwks.keys[0].token(scope="read admin")
    response = get(service, token)
    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": ["admin", "read"], "via": "jwt"}
    assert get(service, token, "/admin/whoami").status_code == 200
    service.stop()
    lines = [json.loads(line) for line in service.output.splitlines() if line.startswith("{")]
    app_line = next(line for line in lines if line["logger"] == "shop")
    assert app_line["subject"] == "alice"
    access = [line for line in lines if line["logger"] == "pilothouse.access" and line["status"] == 200]
    assert access and all(line["subject"] == "alice" for line in access)
    assert token not in service.output
    assert token.split(".")[2] not in service.output  # not even the signature


def test_no_credentials_is_401_with_a_bearer_challenge(service: ServeProcess) -> None:
    response = get(service)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.headers["content-type"] == "application/problem+json"
    assert get(service, path="/client").status_code == 200  # not a protected path


def test_bad_tokens_are_refused(service: ServeProcess, jwks: JwksServer) -> None:
    key = jwks.keys[0]
    stranger = SigningKey("k1")  # same kid, another private key: a forged signature
    now = int(time.time())
    bad = {
        "expired": key.token(exp=now - 3600, iat=now - 7200),
        "wrong audience": key.token(aud="another-service"),
        "wrong issuer": key.token(iss="https://evil.test/"),
        "alg none": unsigned_token("k1"),
        "HS256 with the RSA public key": hs256_with_public_key(key),
        "unknown kid": SigningKey("k-unknown").token(),
        "tampered claims": tampered(key.token()),
        "forged signature": stranger.token(),
        "no exp": key.token(exp=None),
        "garbage": "not.a.token",
    }
    for name, token in bad.items():
        response = get(service, token)
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == 'Bearer realm="api", error="invalid_token"', name
        assert response.json()["status"] == 401
    assert get(service, key.token()).status_code == 200  # the good one still passes
    metrics = httpx.get(f"{service.ops_url}/metrics").text
    assert (
        f'pilothouse_http_requests_refused_total{{reason="invalid_credentials"}} {float(len(bad))}' in metrics
    )


def test_missing_scope_is_403(service: ServeProcess, jwks: JwksServer) -> None:
    response = get(service, jwks.keys[0].token(scope="read"), "/admin/whoami")
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="admin"'
    )


def test_jwks_down_cached_keys_work_new_kids_fail_closed(service: ServeProcess, jwks: JwksServer) -> None:
    assert get(service, jwks.keys[0].token()).status_code == 200  # k1 fetched and cached
    jwks.down = True
    rotated = SigningKey("k2")
    jwks.keys.append(rotated)  # published, but the endpoint is down
    fetches = jwks.fetches
    # Past the refresh age the set is stale: it is fetched again (and fails), k1 keeps working.
    eventually(lambda: get(service, jwks.keys[0].token()).status_code == 200 and jwks.fetches > fetches)
    assert get(service, rotated.token()).status_code == 401
    jwks.down = False
    eventually(lambda: get(service, rotated.token()).status_code == 200)
    assert get(service, jwks.keys[0].token()).status_code == 200


def test_unknown_kid_flood_is_one_fetch_per_interval(service: ServeProcess, jwks: JwksServer) -> None:
    assert get(service, jwks.keys[0].token()).status_code == 200
    fetches = jwks.fetches
    started = time.monotonic()
    for n in range(30):
        assert get(service, SigningKey(f"made-up-{n % 3}").token()).status_code == 401
    elapsed = time.monotonic() - started
    # At most one fetch per 100 ms interval (plus one at each edge), however many kids arrive.
    assert jwks.fetches - fetches <= elapsed / 0.1 + 2


def test_api_keys_from_a_secret(service: ServeProcess) -> None:
    named = get(service, **{"X-API-Key": "key-aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert named.json() == {"subject": "partner-a", "scopes": [], "via": "api-key"}
    anonymous = get(service, **{"X-API-Key": "key-anonymous-bbbbbbbbbbbbbbbb"})
    assert anonymous.status_code == 200 and anonymous.json()["subject"].startswith("api-key-")
    wrong = get(service, **{"X-API-Key": "key-aaaaaaaaaaaaaaaaaaaaaaaX"})
    assert wrong.status_code == 401

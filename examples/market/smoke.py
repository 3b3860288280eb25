"""The market's end-to-end smoke test, against any gateway URL: a local stack, a kind/minikube
cluster behind its Ingress or a port-forward. Standard library only.

    MARKET_API_KEY=... python examples/market/smoke.py http://market.localtest.me
    MARKET_API_KEY=... python examples/market/smoke.py http://127.0.0.1:8080   # after a port-forward

One line per check; exit 0 when all pass, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def call(
    base: str, method: str, path: str, key: str | None = None, body: Any = None, request_id: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    if request_id is not None:
        headers["x-request-id"] = request_id
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in answer_headers.items()}, payload


def checks(base: str, key: str) -> list[tuple[str, Callable[[], str | None]]]:
    """(name, check) pairs; a check returns None when it passes, else what it saw."""
    rid = f"smoke-{secrets.token_hex(6)}"

    def expect(status: int, want: int, payload: Any = None) -> str | None:
        return None if status == want else f"HTTP {status}, expected {want}: {payload}"

    def unauthorized() -> str | None:
        status, headers, payload = call(base, "GET", "/api/users/1")
        return expect(status, 401, payload) or (
            None if headers.get("www-authenticate", "").startswith("Bearer") else "no WWW-Authenticate"
        )

    def wrong_key() -> str | None:
        status, _, payload = call(base, "GET", "/api/users/1", key="not-a-partner-key")
        return expect(status, 401, payload)

    def user() -> str | None:
        status, _, payload = call(base, "GET", "/api/users/1", key=key)
        return expect(status, 200, payload) or (None if payload.get("id") == "1" else f"got {payload}")

    def products() -> str | None:
        status, _, payload = call(base, "GET", "/api/products/", key=key)
        return expect(status, 200, payload) or (None if payload else "empty catalogue")

    def order() -> str | None:
        status, _, payload = call(base, "POST", "/api/orders/", key=key, body={"sku": "mug"})
        return expect(status, 201, payload)

    def unknown_product() -> str | None:
        status, _, payload = call(base, "POST", "/api/orders/", key=key, body={"sku": "no-such-sku"})
        return expect(status, 422, payload)

    def counted() -> str | None:
        status, _, payload = call(base, "GET", "/api/orders/", key=key)
        return expect(status, 200, payload) or (None if payload.get("orders", 0) >= 1 else f"got {payload}")

    def request_id() -> str | None:
        _, headers, _ = call(base, "GET", "/api/users/1", key=key, request_id=rid)
        return None if headers.get("x-request-id") == rid else f"X-Request-ID {headers.get('x-request-id')}"

    return [
        ("unauthorized request refused (401)", unauthorized),
        ("wrong API key refused (401)", wrong_key),
        ("gateway -> users", user),
        ("gateway -> products", products),
        ("gateway -> orders -> products, stored in PostgreSQL", order),
        ("orders refuses an unknown product (422)", unknown_product),
        ("orders counted from PostgreSQL", counted),
        ("request id honoured and returned", request_id),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not os.environ.get("MARKET_API_KEY"):
        print("usage: MARKET_API_KEY=... python smoke.py GATEWAY_URL", file=sys.stderr)
        return 2
    failed = 0
    todo = checks(argv[1].rstrip("/"), os.environ["MARKET_API_KEY"])
    for name, check in todo:
        try:
            problem = check()
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        failed += problem is not None
        print(f"ok    {name}" if problem is None else f"FAIL  {name}: {problem}", flush=True)
    print(f"{len(todo) - failed} of {len(todo)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

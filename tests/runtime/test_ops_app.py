"""The ops endpoints, in process: probes follow the lifecycle, admin needs the right token."""

from __future__ import annotations

import httpx
import pytest

from pilothouse.config import config_from_dict
from pilothouse.runtime.admin_auth import AdminAuth
from pilothouse.runtime.checks import Check, CheckFailed
from pilothouse.runtime.lifecycle import State
from pilothouse.runtime.runtime import Runtime

TOKEN = "correct-horse-battery-staple"
STRONG = "secret-token-9b1f3e7a5c2d8046"


def make_runtime(monkeypatch: pytest.MonkeyPatch, token: str | None = TOKEN) -> Runtime:
    if token is None:
        monkeypatch.delenv("SVC_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SVC_ADMIN_TOKEN", token)
    config = config_from_dict(
        {
            "service": {"name": "svc"},
            "ops": {"admin_token_env": "SVC_ADMIN_TOKEN"},
            "probes": {"cache_ttl": "0s"},
        }
    )
    return Runtime(config)


def client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.ops_app()), base_url="http://ops")


async def test_probes_follow_the_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime(monkeypatch)
    healthy = True
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if not healthy:
            raise CheckFailed("db gone")

    runtime.add_check(Check("db", "python", True, 1.0, flaky))
    async with client(runtime) as ops:
        assert (await ops.get("/health")).status_code == 200
        assert calls == 0  # liveness never calls a check
        starting = await ops.get("/ready")
        assert starting.status_code == 503 and starting.json()["state"] == "starting"
        assert (await ops.get("/startup")).status_code == 503

        runtime.lifecycle.mark_ready()
        ready = await ops.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["db"]["status"] == "pass"
        assert (await ops.get("/startup")).status_code == 200
        assert (await ops.get("/ready?verbose=0")).json() == {"status": "pass"}

        healthy = False
        failing = await ops.get("/ready")
        assert failing.status_code == 503
        assert failing.json()["checks"]["db"] == {
            "status": "fail",
            "critical": True,
            "duration_ms": failing.json()["checks"]["db"]["duration_ms"],
            "error": "db gone",
        }
        called = calls
        assert (await ops.get("/health")).status_code == 200  # liveness never calls dependencies
        assert calls == called

        runtime.lifecycle.begin_shutdown("SIGTERM received")
        draining = await ops.get("/ready")
        assert draining.status_code == 503 and draining.json()["state"] == "draining"
        assert (await ops.get("/health")).status_code == 200  # never killed while draining
        status = (await ops.get("/status")).json()
        assert status["state"] == "draining" and status["drain_reason"] == "SIGTERM received"

        runtime.lifecycle.mark_broken("deadlock detected")
        broken = await ops.get("/health")
        assert broken.status_code == 503 and broken.json()["error"] == "deadlock detected"


async def test_unknown_paths_and_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(make_runtime(monkeypatch)) as ops:
        assert (await ops.get("/nope")).status_code == 404
        assert (await ops.post("/health")).status_code == 405
        assert (await ops.get("/admin/drain")).status_code == 405


async def test_admin_requires_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime(monkeypatch)
    runtime.lifecycle.mark_ready()
    async with client(runtime) as ops:
        missing = await ops.post("/admin/drain")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert (await ops.post("/admin/drain", headers={"authorization": "Basic abc"})).status_code == 401
        wrong = await ops.post("/admin/drain", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403
        assert runtime.lifecycle.state is State.READY

        auth = {"authorization": f"Bearer {TOKEN}"}
        assert (await ops.post("/admin/drain", headers=auth)).json() == {"state": "draining"}
        assert (await ops.get("/ready")).status_code == 503
        assert (await ops.post("/admin/undrain", headers=auth)).json() == {"state": "ready"}
        assert (await ops.get("/ready")).status_code == 200

        runtime.lifecycle.begin_shutdown("SIGTERM received")
        assert (await ops.post("/admin/undrain", headers=auth)).status_code == 409


async def test_admin_disabled_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(make_runtime(monkeypatch, token=None)) as ops:
        assert (await ops.post("/admin/drain", headers={"authorization": "Bearer x"})).status_code == 404


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison goes through hmac.compare_digest (observed, not timed)."""
    import hmac

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = AdminAuth("T", {"T": STRONG})
    assert auth.verify(b"Bearer " + STRONG.encode()) == "ok"
    assert auth.verify(b"Bearer " + STRONG[:-1].encode() + b"x") == "wrong"
    assert seen == [(STRONG.encode(), STRONG.encode()), (STRONG[:-1].encode() + b"x", STRONG.encode())]


async def test_metrics_negotiation_and_gzip(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(make_runtime(monkeypatch)) as ops:
        text = await ops.get("/metrics")
        assert text.headers["content-type"].startswith("text/plain")
        assert "pilothouse_build_info{" in text.text
        om = await ops.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF")
        gz = await ops.get("/metrics", headers={"accept-encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip" and "pilothouse_lifecycle_state" in gz.text


async def test_admin_paths_do_not_exist_while_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(make_runtime(monkeypatch, token=None)) as ops:
        assert (await ops.get("/admin/drain")).status_code == 404  # not 405: nothing to discover


def test_token_from_a_secret_file_with_a_newline() -> None:
    assert AdminAuth("T", {"T": STRONG + "\n"}).verify(b"Bearer " + STRONG.encode()) == "ok"


async def test_terse_mode_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime(monkeypatch)
    runtime.lifecycle.mark_ready()
    async with client(runtime) as ops:
        assert (await ops.get("/ready?verbose=0")).json() == {"status": "pass"}
        assert "checks" in (await ops.get("/ready?verbose=00")).json()

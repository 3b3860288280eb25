"""scripts/smoke.sh against the demo running locally: passes when healthy, names what fails."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx

from tests.helpers import ROOT, SHOP_DIR, ServeProcess

SMOKE = ROOT / "scripts" / "smoke.sh"
TOKEN = "smoke-test-token-a1b2c3d4e5f6"


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SMOKE), *args], capture_output=True, text=True, timeout=60)


def wait_ready(ops_url: str, timeout: float = 15) -> None:
    """Started is not ready: the first round of checks decides readiness, as a rollout waits for."""
    deadline = time.monotonic() + timeout
    while httpx.get(f"{ops_url}/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the demo never became ready"
        time.sleep(0.1)


def test_smoke_passes_then_fails_on_readiness_when_drained() -> None:
    with ServeProcess(SHOP_DIR / "pilothouse.toml", env={"SHOP_ADMIN_TOKEN": TOKEN}) as shop:
        wait_ready(shop.ops_url)
        ok = smoke(shop.app_url, shop.ops_url)
        assert ok.returncode == 0, ok.stderr
        assert "admin without token refused (401)" in ok.stdout
        drained = httpx.post(f"{shop.ops_url}/admin/drain", headers={"Authorization": f"Bearer {TOKEN}"})
        assert drained.status_code == 200
        bad = smoke(shop.app_url, shop.ops_url)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"smoke: FAIL readiness: GET {shop.ops_url}/ready answered 503")


def test_smoke_fails_clearly_when_nothing_listens(refused_port: Callable[[], int]) -> None:
    result = smoke(f"http://127.0.0.1:{refused_port()}", f"http://127.0.0.1:{refused_port()}")
    assert result.returncode == 1
    assert "smoke: FAIL health:" in result.stderr and "answered 000" in result.stderr


def test_smoke_usage_error() -> None:
    assert smoke().returncode == 2

"""End to end with real processes: the service, Prometheus evaluating the generated rules, and
Alertmanager with the generated routes delivering to webhook receivers started by the test
(`/page` stands for the pager, `/escalate` for the second line, `/ticket` for chat).

A critical readiness check points at a TCP port nobody listens on; ReadinessFailing must reach
the pager with its labels and runbook link, reach the second line after `escalate_after` (nobody
silenced it), then resolve once the test opens the port. Then slow
requests push p99 over the threshold while readiness still fails: HighLatencyP99 (a warning of
the same service) is inhibited by the critical alert, and reaches the ticket receiver, never the
pager, once readiness recovers. `for:` is shortened through `[monitoring].pending` (config),
never by editing the output.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pilothouse.config import load_config
from pilothouse.generators.monitoring import generate
from tests.generators.monitoring import engines
from tests.helpers import ROOT, ServeProcess, free_port, write_config

CONFIG = """
[service]
name = "e2e-alerts"
app = "tests.apps.slow:app"
[probes]
cache_ttl = "500ms"
check_timeout = "500ms"
[[checks]]
name = "upstream"
kind = "tcp"
host = "127.0.0.1"
port = {upstream}
critical = true
[lifecycle]
pre_stop_delay = "100ms"
drain_timeout = "1s"
flush_timeout = "500ms"
[monitoring]
runbook_base_url = "https://runbooks.example.test/e2e-alerts"
latency_p99 = "500ms"
pending = {{ ReadinessFailing = "2s", HighLatencyP99 = "1s" }}
[monitoring.receivers.pager]
kind = "webhook"
url = "{hook}/page"
[monitoring.receivers.second-line]
kind = "webhook"
url = "{hook}/escalate"
[monitoring.receivers.chat]
kind = "webhook"
url = "{hook}/ticket"
[monitoring.routing]
page = "pager"
ticket = "chat"
escalation = "second-line"
escalate_after = "3s"
group_wait = "1s"
group_interval = "1s"
"""


def _alerts(
    hook: engines.Webhook, status: str, name: str = "ReadinessFailing", path: str = "/page"
) -> list[dict[str, Any]]:
    return [
        a
        for p in hook.payloads
        if p["path"] == path
        for a in p["alerts"]
        if a["labels"].get("alertname") == name and a["status"] == status
    ]


def _wait(predicate: Callable[[], bool], server: ServeProcess, timeout: float) -> None:
    """Poll readiness like a kubelet would (checks run when asked) until predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        httpx.get(f"{server.ops_url}/ready", timeout=2)
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def _am_alert(am: engines.Engine, name: str) -> dict[str, Any] | None:
    found = httpx.get(f"{am.url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=5).json()
    return found[0] if found else None


def test_alerts_route_inhibit_and_resolve(tmp_path: Path) -> None:
    hook = engines.Webhook()
    upstream_port = free_port()
    cfg_path = write_config(tmp_path, CONFIG.format(upstream=upstream_port, hook=hook.url))
    bundle = generate(load_config(cfg_path))
    out = tmp_path / "bundle"
    for rel, text in bundle.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    started: list[engines.Engine] = []
    server = ServeProcess(cfg_path, cwd=ROOT).start()
    listener: socket.socket | None = None
    try:
        am = engines.alertmanager(tmp_path, out / "alertmanager" / "alertmanager.yaml")
        started.append(am)
        prom = engines.prometheus(
            tmp_path,
            "e2e-alerts",
            f"127.0.0.1:{server.ops_port}",
            [out / "prometheus" / "rules" / "e2e-alerts.rules.yaml"],
            alertmanager=am.url.removeprefix("http://"),
        )
        started.append(prom)

        _wait(lambda: bool(_alerts(hook, "firing")), server, timeout=40)
        alert = _alerts(hook, "firing")[0]
        assert alert["labels"] == {
            "alertname": "ReadinessFailing",
            "severity": "critical",
            "service": "e2e-alerts",
            "job": "e2e-alerts",
            "instance": f"127.0.0.1:{server.ops_port}",
        }
        assert (
            alert["annotations"]["runbook_url"]
            == "https://runbooks.example.test/e2e-alerts/ReadinessFailing.md"
        )
        assert f"127.0.0.1:{server.ops_port}" in alert["annotations"]["summary"]
        _wait(lambda: bool(_alerts(hook, "firing", path="/escalate")), server, timeout=20)
        first = {p["path"]: p["received"] for p in reversed(hook.payloads)}
        assert first["/escalate"] - first["/page"] > 1, "escalation waits escalate_after (3s vs 1s)"

        with httpx.Client(base_url=server.app_url, timeout=5) as client:
            for _ in range(4):
                client.get("/slow", params={"seconds": "0.8"})
        # Alertmanager marks inhibition when it flushes the group (after group_wait); a broken
        # inhibit rule would leave it "active" and deliver it, failing the wait or the asserts.
        _wait(
            lambda: (_am_alert(am, "HighLatencyP99") or {}).get("status", {}).get("state") == "suppressed",
            server,
            timeout=40,
        )
        latency = _am_alert(am, "HighLatencyP99")
        assert latency is not None and latency["status"]["inhibitedBy"]
        assert not _alerts(hook, "firing", "HighLatencyP99", "/ticket")

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", upstream_port))
        listener.listen(16)
        _wait(lambda: bool(_alerts(hook, "resolved")), server, timeout=40)
        assert httpx.get(f"{server.ops_url}/ready", timeout=2).status_code == 200

        _wait(lambda: bool(_alerts(hook, "firing", "HighLatencyP99", "/ticket")), server, timeout=40)
        ticket = _alerts(hook, "firing", "HighLatencyP99", "/ticket")[0]
        assert ticket["labels"]["severity"] == "warning"
        assert ticket["annotations"]["runbook_url"].endswith("/HighLatencyP99.md")
        assert not _alerts(hook, "firing", "HighLatencyP99", "/page")
        assert not _alerts(hook, "firing", "ReadinessFailing", "/ticket")
    finally:
        if listener is not None:
            listener.close()
        for engine in reversed(started):
            engine.stop()
        server.stop()
        hook.stop()

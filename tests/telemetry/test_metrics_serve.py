"""HTTP metrics of a real `pilothouse serve`: exact counts, bucket placement, exposition."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from pilothouse.catalog import process as process_metrics
from tests.helpers import ServeProcess
from tests.telemetry.conftest import value

H = "http_server_request_duration_seconds"


def _load(app: str) -> None:
    with httpx.Client(base_url=app, timeout=10) as client:
        for _ in range(5):
            assert client.get("/items/1").status_code == 200
        for _ in range(3):
            assert client.get("/items/2", params={"sleep": "0.3"}).status_code == 200
        for _ in range(2):
            assert client.post("/items/3", params={"status": "404"}).status_code == 404
        assert client.delete("/items/4", params={"status": "202"}).status_code == 202
        assert client.request("PURGE", "/items/5").status_code == 405
        for i in range(4):
            assert client.get(f"/no/such/{i}").status_code == 404
        assert client.get("/boom").status_code == 500


def test_counts_and_buckets_are_exact(config_factory: Callable[..., Path], serve_env: dict[str, str]) -> None:
    with ServeProcess(config_factory('traces = "none"'), env=serve_env) as serve:
        _load(serve.app_url)
        body = httpx.get(f"{serve.ops_url}/metrics").text

    def count(method: str, route: str, status: str, suffix: str = "_count", **extra: str) -> float:
        labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
        return value(body, H + suffix, **labels, **extra)

    assert count("GET", "/items/{id}", "200") == 8
    assert count("POST", "/items/{id}", "404") == 2
    assert count("DELETE", "/items/{id}", "202") == 1
    assert count("_OTHER", "/items/{id}", "405") == 1
    assert count("GET", "_unmatched", "404") == 4
    assert count("GET", "/boom", "500") == 1
    # Bucket placement: the 0.3 s sleeps land between 0.25 and 0.5, the others below 0.25.
    assert count("GET", "/items/{id}", "200", "_bucket", le="0.25") == 5
    assert count("GET", "/items/{id}", "200", "_bucket", le="0.5") == 8
    assert count("GET", "/items/{id}", "200", "_sum") >= 0.9
    # Nothing else was counted (e.g. the ops port is not instrumented).
    total = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(H + "_count"))
    assert total == 17
    assert value(body, "http_server_active_requests", http_request_method="GET") == 0
    assert (
        value(
            body,
            "pilothouse_build_info",
            service="demo",
            version="1.2.3",
            python_version=__import__("platform").python_version(),
        )
        == 1
    )


def test_exposition_formats_and_promtool(
    config_factory: Callable[..., Path], serve_env: dict[str, str], tmp_path: Path
) -> None:
    with ServeProcess(config_factory('traces = "console"'), env=serve_env) as serve:
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        r = httpx.get(
            f"{serve.app_url}/items/1", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
        )
        assert r.status_code == 200
        text = httpx.get(f"{serve.ops_url}/metrics")
        om = httpx.get(f"{serve.ops_url}/metrics", headers={"Accept": "application/openmetrics-text"})
        zipped = httpx.get(f"{serve.ops_url}/metrics", headers={"Accept-Encoding": "gzip"})
    assert text.headers["content-type"].startswith("text/plain")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    # The exemplar carries the trace id of the request's server span.
    assert f'# {{trace_id="{trace_id}"}}' in om.text
    assert zipped.headers["content-encoding"] == "gzip"
    assert "http_server_request_duration_seconds_bucket" in zipped.text  # httpx decoded it
    assert gzip.compress(b"x")  # the stdlib codec the server uses
    # promtool lints the scrape body (naming, help, types).
    scrape = tmp_path / "scrape.txt"
    scrape.write_text(text.text)
    with scrape.open("rb") as stdin:
        lint = subprocess.run(["promtool", "check", "metrics"], stdin=stdin, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # Process and runtime families declared in the catalog are really exported.
    for spec in process_metrics.SPECS:
        assert f"\n{spec.series()[0]}" in text.text, spec.name

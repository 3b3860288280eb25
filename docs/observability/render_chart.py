"""Render docs/observability/overview.png: real series of the demo shop, scraped by a real
Prometheus and queried with the generated overview dashboard's own panel queries.

Grafana cannot run here, so this plots what four panels would show. Run from the repo root:
    .venv/bin/pip install -e '.[docs]' && .venv/bin/python docs/observability/render_chart.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.generators.monitoring import engines  # noqa: E402
from tests.generators.monitoring.promql_refs import prometheus_query  # noqa: E402
from tests.helpers import SHOP_DIR, ServeProcess  # noqa: E402

from pilothouse.config import load_config  # noqa: E402
from pilothouse.generators.monitoring import generate  # noqa: E402

STATE_PANELS = ("Readiness checks (1 pass, 0 fail)", "Lifecycle state")
PANELS = (
    "Request rate by route",
    "Latency p50 / p90 / p99",
    "Readiness checks (1 pass, 0 fail)",
    "Lifecycle state",
)
TOKEN = "chart-admin-token-0f1e2d3c4b5a"  # noqa: S105 - a throwaway token for the local demo


def traffic(shop: ServeProcess, stop: threading.Event) -> None:
    """Browsing, orders and a few slow reports, with a burst in the middle."""
    with httpx.Client(base_url=shop.app_url, timeout=10) as client:
        started = time.monotonic()
        while not stop.is_set():
            burst = 40 < time.monotonic() - started < 70
            for _ in range(6 if burst else 2):
                client.get("/items")
                client.get("/items/mug")
            client.post("/orders", json={"sku": "mug"})
            client.get("/items/unknown")
            if burst:
                client.get("/work", params={"seconds": "0.3"})
            httpx.get(f"{shop.ops_url}/ready", timeout=5)
            time.sleep(0.2)


def main() -> None:
    config = load_config(SHOP_DIR / "pilothouse.toml")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for rel, text in generate(config).items():
            (tmp / "bundle" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "bundle" / rel).write_text(text)
        board = json.loads((tmp / "bundle/grafana/dashboards/shop-overview.json").read_text())
        queries = {p["title"]: p["targets"] for p in board["panels"] if p["title"] in PANELS}
        # Access log off: ServeProcess reads the child's output only at exit, so a full pipe would block it.
        env = {
            "SHOP_ADMIN_TOKEN": TOKEN,
            "PILOTHOUSE_JOBS__PATH": str(tmp / "jobs.sqlite3"),
            "PILOTHOUSE_TELEMETRY__ACCESS_LOG": "false",
        }
        with ServeProcess(SHOP_DIR / "pilothouse.toml", cwd=SHOP_DIR, env=env) as shop:
            prom = engines.prometheus(
                tmp,
                "shop",
                f"127.0.0.1:{shop.ops_port}",
                [tmp / "bundle/prometheus/rules/shop.rules.yaml"],
                interval="2s",
            )
            stop = threading.Event()
            worker = threading.Thread(target=traffic, args=(shop, stop))
            start = time.time()
            worker.start()
            try:
                time.sleep(80)
                admin = {"Authorization": f"Bearer {TOKEN}"}
                httpx.post(f"{shop.ops_url}/admin/drain", headers=admin, timeout=5)
                time.sleep(15)
                httpx.post(f"{shop.ops_url}/admin/undrain", headers=admin, timeout=5)
                time.sleep(15)
            finally:
                stop.set()
                worker.join()
            end = time.time()
            fig, axes = plt.subplots(2, 2, figsize=(13, 7.5))
            for ax, title in zip(axes.flat, PANELS, strict=True):
                rows: list[str] = []
                for target in queries[title]:
                    # What Grafana would send with a 2 s scrape: $__rate_interval of about 4 scrapes.
                    expr = prometheus_query(target["expr"].replace("$__rate_interval", "10s"))
                    result = httpx.get(
                        f"{prom.url}/api/v1/query_range",
                        timeout=10,
                        params={
                            "query": expr,
                            "start": start,
                            "end": end,
                            "step": 2,
                        },
                    ).json()["data"]["result"]
                    for series in result:
                        legend = target["legendFormat"]
                        for key, value in series["metric"].items():
                            legend = legend.replace("{{" + key + "}}", value)
                        xs = [float(t) - start for t, _ in series["values"]]
                        ys = [float(v) for _, v in series["values"]]
                        if title in STATE_PANELS:  # drawn like Grafana's state timeline
                            rows.append(legend.split(" ", 1)[-1])
                            ax.scatter(
                                xs,
                                [len(rows)] * len(xs),
                                s=6,
                                marker="s",
                                c=["tab:green" if y == 1 else "tab:red" for y in ys],
                            )
                        else:
                            ax.plot(xs, ys, label=legend)
                ax.set_title(title)
                ax.set_xlabel("seconds")
                if rows:
                    ax.set_yticks(range(1, len(rows) + 1), rows)
                    ax.set_ylim(0.5, len(rows) + 0.5)
                else:
                    ax.legend(fontsize=7, loc="upper left")
            fig.suptitle(
                "shop: generated overview panels over real Prometheus data "
                "(burst at 40-70 s, operator drain at 80-95 s)"
            )
            fig.tight_layout()
            fig.savefig(Path(__file__).with_name("overview.png"), dpi=90)
            prom.stop()


if __name__ == "__main__":
    main()

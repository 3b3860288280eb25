"""Orders in, broker answers out, with the service's own business metrics.

    POST /orders {"broker": "oanda", "instrument": "EUR_USD", "units": 100}
      -> 201 {"status": "filled", ...}; 422 {"status": "rejected"} for 0 units;
         502 {"status": "error"} when the broker's API fails (instrument "HALTED")

The broker itself is simulated in-process (no trading venue here); everything around it is real:
the API key is a live secret (Vault in production) and a rotation re-keys the adapter without a
restart, counted in `broker_credential_rotations_total`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator

from prometheus_client import Counter, Gauge, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse
from pilothouse.secrets import live

log = logging.getLogger("broker")

BROKERS = ("oanda",)
ORDERS = Counter(
    "broker_orders_total", "Orders sent to a broker, by broker and status.", ["broker", "status"]
)
LATENCY = Histogram("broker_order_duration_seconds", "Time a broker took to answer an order.", ["broker"])
API_ERRORS = Counter("broker_api_errors_total", "Broker API errors.", ["broker", "error_type"])
CONNECTED = Gauge("broker_connection_status", "1 while the adapter is connected.", ["broker"])
ROTATIONS = Counter("broker_credential_rotations_total", "API keys re-keyed without a restart.", ["broker"])


class Adapter:
    """A broker session keyed by the API key; `key_id` names the key without revealing it."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.key_id = ""

    def connect(self, api_key: str) -> None:
        self.key_id = hashlib.sha256(api_key.encode()).hexdigest()[:8]
        CONNECTED.labels(self.broker).set(1)

    def place(self, instrument: str, units: int) -> str:
        if instrument == "HALTED":
            raise ConnectionError("broker API: instrument halted")
        return "filled" if units else "rejected"


adapters = {name: Adapter(name) for name in BROKERS}


async def place_order(request: Request) -> JSONResponse:
    body = await request.json()
    broker = str(body.get("broker", ""))
    adapter = adapters.get(broker)
    if adapter is None:
        return JSONResponse({"error": f"unknown broker (known: {', '.join(BROKERS)})"}, status_code=404)
    start = time.perf_counter()
    try:
        status = adapter.place(str(body.get("instrument", "")), int(body.get("units", 0)))
    except ConnectionError as exc:
        API_ERRORS.labels(broker, "connection").inc()
        ORDERS.labels(broker, "error").inc()
        log.error("order failed: %s", exc, extra={"broker": broker})
        return JSONResponse({"status": "error"}, status_code=502)
    finally:
        LATENCY.labels(broker).observe(time.perf_counter() - start)
    ORDERS.labels(broker, status).inc()
    log.info("order %s", status, extra={"broker": broker, "key_id": adapter.key_id})
    return JSONResponse(
        {"status": status, "broker": broker, "key_id": adapter.key_id},
        status_code=201 if status == "filled" else 422,
    )


@pilothouse.check("oanda")
def oanda_check() -> None:
    if not adapters["oanda"].key_id:
        raise RuntimeError("the oanda adapter has no API key")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    secret = live("oanda.api-key")
    adapters["oanda"].connect(secret.reveal())

    def rekey(value: object) -> None:
        adapters["oanda"].connect(secret.reveal())
        ROTATIONS.labels("oanda").inc()
        log.info("oanda API key rotated", extra={"key_id": adapters["oanda"].key_id})

    unsubscribe = secret.subscribe(rekey)
    for broker in BROKERS:  # every series exists from the start: rate() and alerts see zeros
        for status in ("filled", "rejected", "error"):
            ORDERS.labels(broker, status)
        ROTATIONS.labels(broker)
    yield
    unsubscribe()
    CONNECTED.labels("oanda").set(0)


app = Starlette(routes=[Route("/orders", place_order, methods=["POST"])], lifespan=lifespan)

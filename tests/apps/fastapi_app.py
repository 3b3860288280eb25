"""A FastAPI app for the telemetry tests: `/orders/{order_id}` logs a line and makes a child
span. FastAPI (0.142+) carries its own OpenTelemetry instrumentation, switched on whenever a
global tracer provider exists: what Pilothouse's server span must not be doubled by."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from opentelemetry import trace

log = logging.getLogger("shop.orders")
tracer = trace.get_tracer("shop")

app = FastAPI()


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    with tracer.start_as_current_span("load order"):
        log.info("order %d loaded", order_id)
    return {"order_id": order_id}

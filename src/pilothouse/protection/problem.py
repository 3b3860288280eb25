"""RFC 9457 problem details (`application/problem+json`): the one body shape every answer the
protection layer gives instead of the app has, carrying the request id and trace id so a user's
report leads to the log line and the trace — and nothing from the exception."""

from __future__ import annotations

import json
from http import HTTPStatus

from pilothouse.telemetry.context import current_request
from pilothouse.telemetry.logs import otel_span_ids

PROBLEM_JSON = b"application/problem+json"

_span_ids = otel_span_ids()


def request_ids() -> dict[str, str]:
    """The current request's id and trace id, as far as telemetry knows them."""
    ids: dict[str, str] = {}
    request = current_request.get()
    if request is not None and request.request_id is not None:
        ids["request_id"] = request.request_id
    span = _span_ids()
    if span is not None:
        ids["trace_id"] = span[0]
    return ids


def problem_body(status: int, detail: str | None = None) -> bytes:
    """`{"type": "about:blank", "title": <reason phrase>, "status": ..., request and trace id}`;
    `detail` only ever holds text Pilothouse wrote (never an exception's)."""
    body: dict[str, object] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(request_ids())
    return json.dumps(body, separators=(",", ":")).encode()

"""Who a request is, once authentication has said so: the subject and its scopes, kept in the
ASGI scope's `state` (Starlette: `request.state.principal`) for the app, the rate limiter's
`key = "subject"` and the log lines. Never the token itself."""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.asgi import Scope

STATE_KEY = "principal"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    method: str
    """How it was proven: "jwt" or "api-key"."""


def principal_of(scope: Scope) -> Principal | None:
    state = scope.get("state")
    found = state.get(STATE_KEY) if state else None
    return found if isinstance(found, Principal) else None

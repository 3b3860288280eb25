"""Bearer-token guard for the admin endpoints.

No token configured means the endpoints do not exist (404), so a forgotten variable cannot
leave them open. A weak token (short, few distinct characters, or a placeholder such as the
CHANGE-ME an example file suggested) is refused at startup: it would guard the drain and job
endpoints in name only. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Literal

from pilothouse.errors import ConfigError

Verdict = Literal["ok", "disabled", "missing", "wrong"]

MIN_LENGTH = 24
MIN_DISTINCT = 10  # `openssl rand -hex 32` has 16 of 16 possible; "aaaa…" or "abab…" has 1 or 2
GENERATE = "openssl rand -hex 32"
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "yourtoken", "example", "generate")


def admin_token(env_var: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The token in `env_var` (None: not set); ConfigError if it is weak. Commands call this
    before they start anything, so a weak token is one line, not a log line and a stack."""
    # Stripped like the presented token: values read from secret files often end in "\n".
    token = (os.environ if environ is None else environ).get(env_var, "").strip()
    if token:
        refuse_weak_token(env_var, token)
    return token or None


def refuse_weak_token(env_var: str, token: str) -> None:
    """ConfigError (one line, never the token) unless `token` is long, varied and not a placeholder."""
    folded = "".join(c for c in token.lower() if c.isalnum())
    if any(word in folded for word in _PLACEHOLDER_WORDS) or any(c.isspace() or c in "<>" for c in token):
        problem = "is a placeholder"
    elif len(token) < MIN_LENGTH:
        problem = f"is too short ({len(token)} characters, at least {MIN_LENGTH} required)"
    elif len(set(token)) < MIN_DISTINCT:
        problem = f"is guessable (only {len(set(token))} distinct characters)"
    else:
        return
    raise ConfigError(f"the admin token in ${env_var} {problem}; generate one with: {GENERATE}")


class AdminAuth:
    """Checks `Authorization: Bearer <token>` against the token in the configured variable."""

    __slots__ = ("_token",)

    def __init__(self, env_var: str, environ: Mapping[str, str] | None = None) -> None:
        token = admin_token(env_var, environ)
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def verify(self, authorization: bytes | None) -> Verdict:
        if self._token is None:
            return "disabled"
        if not authorization:
            return "missing"
        scheme, _, presented = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not presented:
            return "missing"
        return "ok" if hmac.compare_digest(presented.strip(), self._token) else "wrong"

"""Bearer-token guard for the admin endpoints.

No token configured means the endpoints do not exist (404), so a forgotten variable cannot
leave them open. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Literal

Verdict = Literal["ok", "disabled", "missing", "wrong"]


class AdminAuth:
    """Checks `Authorization: Bearer <token>` against the token in the configured variable."""

    __slots__ = ("_token",)

    def __init__(self, env_var: str, environ: Mapping[str, str] | None = None) -> None:
        # Stripped like the presented token: values read from secret files often end in "\n".
        token = (os.environ if environ is None else environ).get(env_var, "").strip()
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

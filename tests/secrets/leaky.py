"""A careless readiness check for the redaction proof: it logs the payments token, raises an
exception carrying it and puts it into its failure reason. Pilothouse must mask all three."""

from __future__ import annotations

import logging

from pilothouse.runtime.checks import CheckFailed
from pilothouse.secrets import live

log = logging.getLogger("shop.payments")


async def payments_check() -> None:
    token = live("payments.token").reveal()
    log.warning("payments gateway rejected token %s", token)
    try:
        raise ValueError(f"gateway refused {token}")
    except ValueError:
        log.exception("payments call failed")
    raise CheckFailed(f"gateway said: invalid token {token}")

"""The access log: which secret was loaded, renewed or failed, from where and when — names and
locations only, never a value. One logger, `pilothouse.secrets.access`, so operators can route
it to an audit sink on its own."""

from __future__ import annotations

import logging

ACCESS_LOG = logging.getLogger("pilothouse.secrets.access")


def record(event: str, name: str, source: str, location: str, version: str | None = None) -> None:
    """Log one access event ("loaded", "rotated", "renewed", "reload-failed")."""
    suffix = f" version={version}" if version else ""
    ACCESS_LOG.info(
        "secret %s: name=%s source=%s location=%s%s",
        event,
        name,
        source,
        location,
        suffix,
        extra={"secret_event": event, "secret_name": name, "secret_source": source},
    )

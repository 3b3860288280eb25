"""The `http_route` label: the route template the framework matched, never the raw path.

Starlette (and FastAPI, built on it) store the matched route in `scope["route"]` while routing;
the middleware reads it after the app ran. Anything unmatched (404s, scanners) gets the one
shared UNMATCHED_ROUTE value, so 10,000 random paths add no series.
"""

from __future__ import annotations

from pilothouse.asgi import Scope
from pilothouse.catalog.http_server import UNMATCHED_ROUTE


def route_template(scope: Scope, entry_root_path: str) -> str:
    """The template of the route that handled `scope`, with the prefixes of the mounts it sits
    under (taken from how far `root_path` grew since the middleware saw the request)."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    root_path: str = scope.get("root_path", "")
    if root_path == entry_root_path:  # not under a mount: the template is the whole route
        return template
    prefix = root_path[len(entry_root_path) :] if root_path.startswith(entry_root_path) else ""
    if prefix and hasattr(route, "routes"):
        # A Mount itself (e.g. static files): root_path already includes its own prefix.
        own: str = getattr(route, "path", "")
        if own and prefix.endswith(own):
            prefix = prefix[: -len(own)]
    return prefix + template

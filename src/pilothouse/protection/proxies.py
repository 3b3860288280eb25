"""Trusted proxies: the client address and scheme from `Forwarded` (RFC 7239) or
`X-Forwarded-For` / `X-Forwarded-Proto`, believed only when the peer is in a configured network.

Hand-written rather than uvicorn's `ProxyHeadersMiddleware`: that one reads only the
`X-Forwarded-*` pair, and the issue asks for `Forwarded` too. The address list is walked from
the right, skipping trusted hops: the first untrusted address is the client (a client can put
anything on the left of the list, so the leftmost entry proves nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from pilothouse.asgi import Scope
from pilothouse.config.protection import Network

_SCHEMES = frozenset(("http", "https", "ws", "wss"))


class TrustedProxies:
    """Rewrites `scope["client"]` and `scope["scheme"]` for requests from trusted proxies."""

    __slots__ = ("_networks",)

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)

    def trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def resolve(self, scope: Scope) -> None:
        client = scope.get("client")
        if not client or not self.trusted(client[0]):
            return
        forwarded: list[bytes] = []
        xff: list[bytes] = []
        proto: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"forwarded":
                forwarded.append(value)
            elif name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"x-forwarded-proto":
                proto = value
        last_proto = proto.decode("latin-1").split(",")[-1].strip().lower() if proto else None
        if forwarded:
            hops = _forwarded_hops(b",".join(forwarded).decode("latin-1"))
        elif xff:
            hops = [(item.strip(), None) for item in b",".join(xff).decode("latin-1").split(",")]
            hops[-1] = (hops[-1][0], last_proto)
        else:  # only the scheme (a TLS-terminating proxy that sets no address list)
            if last_proto in _SCHEMES:
                scope["scheme"] = last_proto
            return
        chosen: tuple[str, str | None] | None = None
        scheme: str | None = None
        for host, hop_proto in reversed(hops):
            scheme = hop_proto or scheme
            chosen = (host, scheme)
            if not self.trusted(host):
                break
        if chosen is None:
            return
        host, scheme = chosen
        if host and host.lower() != "unknown" and not host.startswith("_"):
            scope["client"] = (host.strip("[]"), 0)
        if scheme in _SCHEMES:
            scope["scheme"] = scheme


def _forwarded_hops(value: str) -> list[tuple[str, str | None]]:
    """(for, proto) of each element of a `Forwarded` header value (RFC 7239 §4)."""
    hops: list[tuple[str, str | None]] = []
    for element in value.split(","):
        host = ""
        proto: str | None = None
        for pair in element.split(";"):
            key, _, raw = pair.partition("=")
            item = raw.strip().strip('"')
            key = key.strip().lower()
            if key == "for":
                host = _strip_port(item)
            elif key == "proto":
                proto = item.lower()
        hops.append((host, proto))
    return hops


def _strip_port(node: str) -> str:
    """`[2001:db8::1]:443` → `2001:db8::1`, `192.0.2.1:80` → `192.0.2.1`."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.split(":")[0]
    return node

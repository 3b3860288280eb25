"""Egress rules for the service's NetworkPolicy, derived from where the config says it connects.

A NetworkPolicy cannot name a DNS host, so each destination becomes the narrowest peer that
can be written: an in-cluster name (`db`, `x.ns.svc`) becomes its namespace (or this one), an IP
address or CIDR an `ipBlock`, and an external host or a URL hidden in a secret reference only
pins the port (`0.0.0.0/0` on that port). DNS (UDP and TCP 53 to kube-dns) is always allowed:
without it no name resolves. Opt-in with `[deploy.egress] enabled = true`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pilothouse.config import Config
from pilothouse.config.checks import HttpCheck, PostgresCheck, RedisCheck, TcpCheck
from pilothouse.config.secret_ref import SecretRef
from pilothouse.generators.deploy import facts

Obj = dict[str, Any]
ANYWHERE = "0.0.0.0/0"
DNS_PORT = 53
_DEFAULT_PORTS = {
    "postgresql": 5432,
    "postgres": 5432,
    "redis": 6379,
    "rediss": 6379,
    "http": 80,
    "https": 443,
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the pod connects: `host` None when the address is only known at run time (a secret)."""

    host: str | None
    port: int | str


def destinations(config: Config) -> list[Destination]:
    """Every destination the config names, in a stable order."""
    out: list[Destination] = []
    db = config.deploy.database
    db_enabled = db is not None and db.enabled
    for check in config.checks:
        if isinstance(check, PostgresCheck | RedisCheck):
            if not (db_enabled and isinstance(check, PostgresCheck) and isinstance(check.url, SecretRef)):
                out.extend(_url(check.url, check.kind))
        elif isinstance(check, HttpCheck):
            out.extend(_url(check.url, "http"))
        elif isinstance(check, TcpCheck):
            out.append(Destination(check.host, check.port))
    jobs = config.jobs
    if jobs is not None and jobs.url is not None and not (db_enabled and isinstance(jobs.url, SecretRef)):
        out.extend(_url(jobs.url, "postgresql"))
    vault = config.secrets.vault
    if vault is not None and "vault" in config.secrets.sources:
        out.extend(_url(vault.address, "https") if vault.address else [Destination(None, 8200)])
    if config.telemetry.traces == "otlp":
        out.extend(_url(config.deploy.otlp_endpoint, "http"))
    if db is not None and db.enabled:
        out.append(Destination(facts.database_host(config), db.port))
    out.extend(Destination(name, "http") for name in config.deploy.calls)
    for item in config.deploy.egress.allow:
        host, _, port = item.rpartition(":")
        out.append(Destination(None if host == "*" else host, int(port)))
    return list(dict.fromkeys(out))


def _url(url: str | SecretRef | None, default_scheme: str) -> list[Destination]:
    if url is None:
        return []
    if isinstance(url, SecretRef):  # only the default port is known before run time
        return [Destination(None, _DEFAULT_PORTS[default_scheme])]
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return []
    return [Destination(parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443))]


def rules(config: Config) -> list[Obj]:
    """NetworkPolicy egress rules: DNS first, then one rule per peer with all its ports."""
    dns: Obj = {
        "ports": [{"port": DNS_PORT, "protocol": "UDP"}, {"port": DNS_PORT, "protocol": "TCP"}],
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": config.deploy.egress.dns_namespace}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
    }
    by_peer: dict[str, tuple[Obj, list[int | str]]] = {}
    for dest in destinations(config):
        peer = _peer(config, dest)
        if peer is None:
            continue
        key = json.dumps(peer, sort_keys=True)
        ports = by_peer.setdefault(key, (peer, []))[1]
        if dest.port not in ports:
            ports.append(dest.port)
    out = [dns]
    for key in sorted(by_peer):
        peer, ports = by_peer[key]
        ordered = sorted(ports, key=lambda p: (isinstance(p, str), str(p).zfill(5)))
        out.append({"ports": [{"port": p, "protocol": "TCP"} for p in ordered], "to": [peer]})
    return out


def _peer(config: Config, dest: Destination) -> Obj | None:
    """The narrowest NetworkPolicy peer for a destination (None: loopback, never filtered)."""
    host = dest.host
    if host is None or host == "*":
        return {"ipBlock": {"cidr": ANYWHERE}}
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        network = None
    if network is not None:
        return None if network.is_loopback else {"ipBlock": {"cidr": str(network)}}
    if host == "localhost":
        return None
    db = config.deploy.database
    if db is not None and db.enabled and host == facts.database_host(config):
        return {"podSelector": {"matchLabels": facts.database_labels(config)}}
    if isinstance(dest.port, str) and host in config.deploy.calls:  # a service of the same stack
        return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": host}}}
    name = host.removesuffix(".").removesuffix(".cluster.local")
    if "." not in name:
        return {"podSelector": {}}  # a Service in this namespace
    if name.endswith(".svc"):
        namespace = name.removesuffix(".svc").rsplit(".", 1)[-1]
        if namespace == facts.namespace(config):
            return {"podSelector": {}}
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    return {"ipBlock": {"cidr": ANYWHERE}}  # an external name: only the port can be pinned

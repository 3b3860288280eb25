"""`pilothouse secrets check|rotate-test|policy`: resolve, rehearse rotation, print the Vault policy.

None of them ever prints a secret value: only names, sources, locations and ages.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.errors import ConfigError, SecretError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.secret_ref import SecretRef
    from pilothouse.secrets.live import SecretStore
    from pilothouse.secrets.resolver import SecretResolver


def register(sub: Subcommands) -> None:
    secrets = command(
        sub, "secrets", "check secrets, rehearse rotation, print a Vault policy", "pilothouse secrets check"
    )
    actions = secrets.add_subparsers(title="actions", metavar="ACTION", required=True)

    check = command(
        actions,
        "check",
        "resolve every referenced secret; print source and age, never the value (exit 1 if a "
        "required one is missing or unreadable)",
        "pilothouse secrets check --config pilothouse.toml --format json",
    )
    add_config_option(check)
    add_format_option(check)
    check.set_defaults(handler=run_check)

    rotate = command(
        actions,
        "rotate-test",
        "load the secrets, then watch them like the running service does and report each rotation "
        "it notices (exit 0 once the expected secrets rotated, 1 on timeout)",
        "pilothouse secrets rotate-test --expect db.password --timeout 2m",
    )
    add_config_option(rotate)
    rotate.add_argument(
        "--expect", action="append", default=[], metavar="NAME", help="secret that must rotate (repeatable)"
    )
    rotate.add_argument("--timeout", default="60s", help="give up after this long (default 60s)")
    rotate.add_argument("--interval", default=None, help="poll interval (default [secrets].watch_interval)")
    rotate.set_defaults(handler=run_rotate_test)

    policy = command(
        actions,
        "policy",
        "print a least-privilege Vault/OpenBao policy (HCL) for the secrets the config references",
        "pilothouse secrets policy > shop-policy.hcl && bao policy write shop shop-policy.hcl",
    )
    add_config_option(policy)
    policy.set_defaults(handler=run_policy)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def run_check(args: argparse.Namespace) -> int:
    from pilothouse.secrets.resolver import SecretResolver

    config = load(args)
    resolver = SecretResolver(config)
    refs: dict[str, SecretRef] = {}
    for ref in config.secret_refs():
        refs.setdefault(ref.secret, ref)
    try:
        rows = [_row(resolver, ref) for ref in refs.values()]
    finally:
        resolver.close()
    failed = [r for r in rows if r["status"] in ("missing", "error")]
    emit(args, {"secrets": rows, "ok": not failed}, _check_text(rows, failed))
    return 1 if failed else 0


def _row(resolver: SecretResolver, ref: SecretRef) -> dict[str, Any]:
    """One secret's report: status, source, location and age, or where it was looked for."""
    row: dict[str, Any] = {"secret": ref.secret, "required": ref.required}
    try:
        resolved = resolver.resolve(ref)
    except SecretError as exc:
        return {**row, "status": "error", "error": str(exc)}
    if resolved is None:
        return {**row, "status": "missing" if ref.required else "unset", "looked_in": resolver.where(ref)}
    age = None if resolved.updated_at is None else max(0, int(time.time() - resolved.updated_at))
    return {
        **row,
        "status": "ok",
        "source": resolved.source,
        "location": resolved.location,
        "age_seconds": age,
        "age": _age(age),
    }


def _check_text(rows: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
    if not rows:
        return "no secrets referenced in the config"
    lines = []
    for row in rows:
        name = row["secret"]
        if row["status"] == "ok":
            lines.append(f"ok       {name}: {row['source']} {row['location']} (age {row['age']})")
        elif row["status"] == "error":
            lines.append(f"ERROR    {name}: {row['error']}")
        elif row["status"] == "missing":
            lines.append(f"MISSING  {name}: looked in {', '.join(row['looked_in'])}")
        else:
            lines.append(f"unset    {name} (optional): looked in {', '.join(row['looked_in'])}")
    lines.append(f"{len(rows) - len(failed)}/{len(rows)} secret(s) ok")
    return "\n".join(lines)


def run_rotate_test(args: argparse.Namespace) -> int:
    from pilothouse.durations import parse_duration
    from pilothouse.secrets.live import SecretStore
    from pilothouse.secrets.resolver import SecretResolver

    config = load(args)
    try:
        timeout = parse_duration(args.timeout)
        interval = parse_duration(args.interval) if args.interval else config.secrets.watch_interval
    except ValueError as exc:
        raise ConfigError(f"--timeout/--interval: {exc}") from None
    store = SecretStore(SecretResolver(config), config.secret_refs())
    unknown = [name for name in args.expect if name not in store]
    if unknown:
        raise ConfigError(f"--expect: {', '.join(unknown)} not referenced in {config.source}")
    if not store.secrets:
        raise ConfigError(f"{config.source}: no secrets referenced; nothing to watch")
    try:
        store.load_all()
        return _watch(store, set(args.expect), timeout, max(interval, 0.1))
    finally:
        store.close()


def _watch(store: SecretStore, expected: set[str], timeout: float, interval: float) -> int:
    names = ", ".join(sorted(store.secrets))
    print(f"watching {names} every {interval:g}s for {timeout:g}s; rotate a secret now", flush=True)
    rotated: set[str] = set()
    reported: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(interval)
        for secret in store.refresh():
            resolved = secret.resolved
            if resolved is None:
                continue
            version = f" version {resolved.version}" if resolved.version else ""
            print(f"rotated  {secret.name}: {resolved.source} {resolved.location}{version}", flush=True)
            rotated.add(secret.name)
        for name, reason in store.failures.items():
            if reported.get(name) != reason:
                print(f"FAILED   {name}: {reason}", flush=True)
        reported = store.failures
        if (expected and expected <= rotated) or (not expected and rotated):
            print(f"ok: rotation picked up for {', '.join(sorted(rotated))} without a restart")
            return 0
    missing = sorted(expected - rotated) if expected else sorted(store.secrets)
    print(f"no rotation seen for {', '.join(missing)} within {timeout:g}s", file=sys.stderr)
    return 1


def run_policy(args: argparse.Namespace) -> int:
    from pilothouse.secrets.policy import vault_policy

    sys.stdout.write(vault_policy(load(args)))
    return 0

"""The first pilothouse.toml for a detected project: commented, valid, no literal credential.

Defaults are read from the config models (never retyped here), so the file shows what the
runtime would use anyway and a later change of a default shows up in a new `init`.
"""

from __future__ import annotations

from pilothouse.config.lifecycle import LifecycleConfig
from pilothouse.config.ops import OpsConfig
from pilothouse.config.secret_ref import SecretRef
from pilothouse.config.service import ServiceConfig
from pilothouse.durations import format_duration
from pilothouse.scaffold.detect import Detection
from pilothouse.secrets.providers.env import env_name

# check kind -> (check name, secret name, what the URL looks like)
_URL_CHECKS = {
    "postgres": ("database", "db.url", "postgresql://user:password@host:5432/dbname"),
    "redis": ("cache", "redis.url", "redis://host:6379/0"),
}


def _default(model: type[ServiceConfig] | type[OpsConfig] | type[LifecycleConfig], name: str) -> object:
    return model.model_fields[name].default


def admin_token_env(found: Detection) -> str:
    return f"{found.name.upper().replace('-', '_')}_ADMIN_TOKEN"


def _checks(found: Detection) -> list[str]:
    lines = []
    for kind, (name, secret, example) in _URL_CHECKS.items():
        if kind not in found.drivers:
            continue
        variable = env_name(found.name, SecretRef(secret=secret))
        lines += [
            f"# {', '.join(found.drivers[kind])} in the dependencies: readiness depends on {kind}.",
            f"# The URL is a secret: set {variable}={example}",
            "# (or mount it at <secrets.mount_dir>/" + secret.replace(".", "/") + " in Kubernetes).",
            "[[checks]]",
            f'name = "{name}"',
            f'kind = "{kind}"',
            f'url = {{ secret = "{secret}" }}',
            "critical = true",
            "",
        ]
    if "http" in found.drivers:
        lines += [
            "# httpx in the dependencies: if the service calls another one it needs, check it:",
            "# [[checks]]",
            '# name = "upstream"',
            '# kind = "http"',
            '# url = "http://upstream.internal:8080/health"',
            "# critical = false",
            "",
        ]
    lines += [
        "# Free space where the service writes; not critical: a full disk warns, traffic continues.",
        "[[checks]]",
        'name = "disk"',
        'kind = "disk"',
        'path = "."',
        'min_free = "5%"',
        "critical = false",
        "",
    ]
    return lines


def render(found: Detection) -> str:
    """The file's text; `pilothouse config check` accepts it (tests/scaffold)."""
    if found.app:
        app = [f'app = "{found.app}"  # the {found.framework} app found in the source']
    else:
        app = ['# app = "package.module:app"  # no ASGI app found: name yours here']
    lifecycle = LifecycleConfig()
    lines = [
        f"# pilothouse.toml for {found.name}, written by `pilothouse init`.",
        "# Check it with `pilothouse config check`, run it with `pilothouse serve`;",
        "# every key and its default: `pilothouse config show --format json`.",
        "",
        "[service]",
        f'name = "{found.name}"  # the Kubernetes name, the metrics job, the log field',
        *app,
        f"port = {_default(ServiceConfig, 'port')}  # the app's port",
        "",
        "[ops]",
        f"port = {_default(OpsConfig, 'port')}  # probes, /metrics and /admin, apart from the app",
        f'admin_token_env = "{admin_token_env(found)}"  # the /admin token is read from here',
        "",
        *_checks(found),
        "# Graceful shutdown (the defaults): on SIGTERM fail readiness, wait pre_stop_delay for load",
        "# balancers to notice, let requests finish within drain_timeout, flush telemetry, exit.",
        "# The Kubernetes grace period is derived from these, never set separately.",
        "[lifecycle]",
        f'pre_stop_delay = "{format_duration(lifecycle.pre_stop_delay)}"',
        f'drain_timeout = "{format_duration(lifecycle.drain_timeout)}"',
        f'flush_timeout = "{format_duration(lifecycle.flush_timeout)}"',
        f'startup_timeout = "{format_duration(lifecycle.startup_timeout)}"',
        "",
        "# Secrets are looked up in Kubernetes-mounted files, then the environment.",
        "[secrets]",
        'sources = ["kubernetes", "env"]',
        "",
    ]
    return "\n".join(lines)

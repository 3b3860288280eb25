"""Derived deploy facts every artifact prints: names, labels, image, timings, secrets, environment.

Computed once from the config model so the Deployment, the Dockerfile, compose and systemd cannot
disagree about a port, a path, a grace period or where a secret is read from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath

from pilothouse.config import Config, SecretRef
from pilothouse.config.schedules import ScheduleConfig
from pilothouse.config.secret_ref import env_name, mount_path
from pilothouse.config.secrets import KubernetesAuth
from pilothouse.durations import format_duration

CONFIG_DIR = "/etc/pilothouse"
"""Where the config file is mounted (ConfigMap) or copied (image); PILOTHOUSE_CONFIG points here."""
CONFIG_FILE = "pilothouse.toml"
APP_DIR = "/app"
ADMIN_SECRET_KEY = "token"  # noqa: S105 - a key name, not a value


STATE_ENV = "PILOTHOUSE_SERVICE__STATE_DIR"
"""The runtime's own override of `[service] state_dir`: every target points it at its writable place."""


def state_dir(config: Config) -> str:
    """The one writable place for state (job store, caches) in every target: an emptyDir in the
    pod, a named volume in compose, `StateDirectory=` (under /var/lib) in systemd."""
    return f"/var/lib/{config.service.name}"


def config_path() -> str:
    return f"{CONFIG_DIR}/{CONFIG_FILE}"


def namespace(config: Config) -> str:
    return config.deploy.namespace or config.service.name


def labels(config: Config) -> dict[str, str]:
    """Selector labels: stable for the life of the Deployment (never the version)."""
    return {"app.kubernetes.io/name": config.service.name, "app.kubernetes.io/part-of": namespace(config)}


def image_ref(config: Config) -> str:
    deploy = config.deploy
    return f"{deploy.image or config.service.name}:{deploy.tag or config.service.version}"


def workload_kind(config: Config) -> tuple[str, str]:
    """(apiVersion, kind) of the object that runs the pods: an Argo `Rollout` for blue-green."""
    if config.deploy.strategy == "blue-green":
        return "argoproj.io/v1alpha1", "Rollout"
    return "apps/v1", "Deployment"


def prestop_sleep_seconds(config: Config) -> int:
    """The preStop hook sleeps for the pre-stop delay: endpoints are removed while we still serve."""
    return config.lifecycle.pre_stop_hook_seconds


def stop_timeout_seconds(config: Config) -> int:
    """SIGTERM to kill where nothing sleeps before SIGTERM (compose, systemd)."""
    return config.lifecycle.stop_timeout_seconds


def startup_window_seconds(config: Config) -> int:
    """How long a start may take before the orchestrator gives up: `[lifecycle].startup_timeout`
    (the runtime's own limit) rounded up, at least 5 s. The startup probe, the Dockerfile and
    compose start periods and systemd's TimeoutStartSec all print this one number."""
    return max(5, math.ceil(config.lifecycle.startup_timeout))


def connection_limits(config: Config) -> dict[str, str]:
    """Each port's connection limits as the runtime enforces them, for the artifacts to show."""
    return {
        port: f"max_connections={section.max_connections} header_timeout="
        f"{format_duration(section.header_timeout)} idle_timeout={format_duration(section.idle_timeout)}"
        for port, section in (("app", config.service), ("ops", config.ops))
    }


def grace_period_seconds(config: Config) -> int:
    """Kubernetes counts the preStop hook inside the grace period, so it is added on top."""
    return config.lifecycle.pod_grace_period_seconds


@dataclass(frozen=True, slots=True)
class SecretMount:
    """One Kubernetes Secret (a secret group) and where its keys appear as files."""

    secret_name: str
    volume: str
    mount_dir: str
    keys: tuple[str, ...]


def database_name(config: Config) -> str:
    """The StatefulSet (and headless Service) of `[deploy.database]`."""
    return f"{config.service.name}-db"


def database_labels(config: Config) -> dict[str, str]:
    return {"app.kubernetes.io/name": database_name(config), "app.kubernetes.io/part-of": namespace(config)}


def database_host(config: Config, prefix: str = "") -> str:
    """The in-cluster DNS name the app's database URL points at (`prefix`: an overlay's namePrefix,
    which kustomize puts before the StatefulSet's and its Service's names)."""
    name = prefix + database_name(config)
    return f"{name}-0.{name}.{namespace(config)}.svc"


def secret_name(config: Config, group: str) -> str:
    return f"{config.service.name}-{group.replace('.', '-')}"


def admin_secret_name(config: Config) -> str:
    """The Secret holding the admin token (key ADMIN_SECRET_KEY)."""
    return secret_name(config, "admin")


def _group_key(ref: SecretRef) -> tuple[str, str]:
    group, _, key = ref.secret.rpartition(".")
    return group or "default", key


def secret_mounts(config: Config) -> list[SecretMount]:
    """Volumes for every referenced secret group, when the resolver looks in mounted files (the
    `kubernetes` source): the runtime loads every reference at startup, app ones included."""
    if "kubernetes" not in config.secrets.sources:
        return []
    groups: dict[str, tuple[str, set[str]]] = {}
    for ref in config.secret_refs():
        group, key = _group_key(ref)
        mount = str(PurePosixPath(mount_path(config.secrets.mount_dir, ref)).parent)
        groups.setdefault(group, (mount, set()))[1].add(key)
    return [
        SecretMount(secret_name(config, g), f"secret-{g.replace('.', '-')}", mount, tuple(sorted(keys)))
        for g, (mount, keys) in sorted(groups.items())
    ]


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An environment variable whose value comes from a key of a Kubernetes Secret."""

    env: str
    secret_name: str
    key: str


def secret_envs(config: Config) -> list[SecretEnv]:
    """Every variable set from a Secret: admin token, app secrets, and runtime secrets read via env."""
    out = [SecretEnv(config.ops.admin_token_env, admin_secret_name(config), ADMIN_SECRET_KEY)]
    for env, ref in sorted(config.deploy.secret_env.items()):
        group, key = _group_key(ref)
        out.append(SecretEnv(env, secret_name(config, group), key))
    if "kubernetes" not in config.secrets.sources and "env" in config.secrets.sources:
        for ref in config.secret_refs():
            group, key = _group_key(ref)
            out.append(SecretEnv(env_name(config.service.name, ref), secret_name(config, group), key))
    return sorted(set(out), key=lambda s: s.env)


def plain_env(config: Config, otlp_endpoint: str | None = None) -> dict[str, str]:
    """Non-secret variables the runtime and app read; the config path first of all.

    `otlp_endpoint` is the collector as the target sees it (each target has its own: a pod
    resolves `*.svc` names, a compose service or a host does not); None sets no variable."""
    env = {"PILOTHOUSE_CONFIG": config_path(), "PYTHONPATH": APP_DIR, STATE_ENV: state_dir(config)}
    if config.telemetry.traces == "otlp" and otlp_endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    env.update(config.deploy.env)
    return dict(sorted(env.items()))


VAULT_ADDRESS_ENV = ("VAULT_ADDR", "BAO_ADDR")
"""Where the Vault client looks for the server when `[secrets.vault] address` is unset."""


def uses_vault(config: Config) -> bool:
    return "vault" in config.secrets.sources and config.secrets.vault is not None


def vault_address_missing(config: Config) -> bool:
    """True when a deployed service would start with Vault as a source and no address: neither
    `[secrets.vault] address` nor VAULT_ADDR/BAO_ADDR in `[deploy].env`. (An environment's `env`
    is not enough: compose and the systemd unit are written from the base env only.)"""
    if not uses_vault(config) or config.secrets.vault is None or config.secrets.vault.address:
        return False
    return not any(name in config.deploy.env for name in VAULT_ADDRESS_ENV)


def vault_token_file(config: Config) -> PurePosixPath | None:
    """The service-account token file the Vault Kubernetes auth reads, when that auth is used:
    the pod gets a projected token there (the pod spec turns the automatic mount off)."""
    vault = config.secrets.vault if uses_vault(config) else None
    if vault is None or not isinstance(vault.auth, KubernetesAuth):
        return None
    return PurePosixPath(vault.auth.jwt_file)


def secret_keys(config: Config) -> dict[str, set[str]]:
    """Every Secret the bundle references and its keys (for the example Secret manifest)."""
    out: dict[str, set[str]] = {}
    for mount in secret_mounts(config):
        out.setdefault(mount.secret_name, set()).update(mount.keys)
    for item in secret_envs(config):
        out.setdefault(item.secret_name, set()).add(item.key)
    db = config.deploy.database
    if db is not None and db.enabled:
        out.setdefault(secret_name(config, db.secret), set()).update({"password"})
    return out


def app_paths(config: Config) -> list[str]:
    """What of the project is copied into the image: the app's top-level package by default."""
    if config.deploy.container.app_paths:
        return list(config.deploy.container.app_paths)
    app = config.service.app or ""
    return [app.split(":", 1)[0].split(".", 1)[0]] if app else []


def scheduled_job_args(schedule: ScheduleConfig) -> list[str]:
    """`jobs run NAME --param=k=v ...`: what a CronJob or a systemd timer runs for a schedule."""
    params = [f"--param={key}={value}" for key, value in sorted(schedule.params.items())]
    return ["jobs", "run", schedule.job, *params]

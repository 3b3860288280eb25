"""Docker Compose: `compose.yaml` for development, `compose.prod.yaml` hardened for a single host.

Healthchecks are the Dockerfile's (same command, same ops path and port). Secret values never
appear: runtime secrets are compose secrets read from files and mounted where the resolver looks,
app variables that hold secrets are `${VAR:?}` interpolations from the operator's environment.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pilothouse.config import Config
from pilothouse.config.deploy import DatabaseConfig, Resources
from pilothouse.config.secret_ref import mount_path
from pilothouse.generators.deploy import facts, secret_examples
from pilothouse.generators.deploy.container import DOCKERFILE, healthcheck_command
from pilothouse.generators.deploy.quantity import cpu_cores, memory_bytes
from pilothouse.generators.yaml import dump

Obj = dict[str, Any]
PROMETHEUS_CONFIG = "compose.prometheus.yml"
DEV_SECRETS = "secrets.dev"
DEV_ENV = "compose.dev.env"
REDIS_IMAGE = "redis:7.4-bookworm"
PROMETHEUS_IMAGE = "prom/prometheus:v2.54.1"
STATE_VOLUME = "state"
"""The named volume behind `facts.state_dir`; the image creates that directory owned by the app's
uid, so a new volume starts with that owner."""


def _healthcheck(config: Config) -> Obj:
    return {
        "interval": "10s",
        "retries": 3,
        "start_period": f"{facts.startup_window_seconds(config)}s",
        "test": ["CMD", *healthcheck_command(config)],
        "timeout": f"{max(2, round(config.probes.check_timeout + 2))}s",
    }


def _compose_secrets(config: Config, directory: str = "secrets") -> tuple[list[Obj], Obj]:
    """(service `secrets:` entries, top-level `secrets:`): every referenced secret as a file
    under `directory` mounted where the resolver's `kubernetes` source looks for it."""
    if "kubernetes" not in config.secrets.sources:
        return [], {}
    uses: list[Obj] = []
    top: Obj = {}
    for ref in config.secret_refs():
        key = ref.secret.replace(".", "-")
        if key in top:
            continue
        top[key] = {"file": f"./{directory}/{ref.secret}"}
        uses.append(
            {
                "mode": 0o400,
                "source": key,
                "target": str(mount_path(config.secrets.mount_dir, ref)),
                "uid": str(config.deploy.container.uid),
            }
        )
    return uses, top


def _environment(config: Config, dev: bool) -> Obj:
    env: Obj = dict(facts.plain_env(config, config.deploy.compose.otlp_endpoint))
    for item in facts.secret_envs(config):
        env[item.env] = f"${{{item.env}:?set {item.env} in the environment or an .env file}}"
    db = _database(config, dev)
    for var, ref in config.deploy.secret_env.items():
        if dev and db is not None and ref.secret == f"{db.secret}.url":
            env[var] = secret_examples.database_url(db, "postgres", None)  # trust auth: no password
    return dict(sorted(env.items()))


def _build_context(config: Config, bundle_dir: str) -> str:
    """The config's directory as seen from the bundle. Computed from the config's own location:
    `relpath(".", bundle_dir)` walks back from a `../..` bundle using the names of the directory
    `generate` ran in, which is how a context of `../../../tmp` appeared."""
    base = config.source.resolve().parent.as_posix() if config.source else "/config"
    return posixpath.relpath(base, posixpath.normpath(posixpath.join(base, bundle_dir)))


def _app(config: Config, dev: bool, bundle_dir: str) -> Obj:
    uid = config.deploy.container.uid
    service: Obj = {
        "build": {
            "context": _build_context(config, bundle_dir),
            "dockerfile": posixpath.join(bundle_dir, DOCKERFILE),
        },
        "environment": _environment(config, dev),
        "healthcheck": _healthcheck(config),
        "image": facts.image_ref(config),
        "stop_grace_period": f"{facts.stop_timeout_seconds(config)}s",
        "stop_signal": "SIGTERM",
        "user": f"{uid}:{uid}",
        "volumes": [f"{STATE_VOLUME}:{facts.state_dir(config)}"],
    }
    uses, _ = _compose_secrets(config, DEV_SECRETS if dev else "secrets")
    if uses:
        service["secrets"] = uses
    return service


def _database(config: Config, dev: bool) -> DatabaseConfig | None:
    """The declared database; development always gets one (defaults) so the app can try it."""
    db = config.deploy.database
    if db is not None and not db.enabled:
        return None
    return db if db is not None or not dev else DatabaseConfig()


def _postgres(config: Config, dev: bool) -> Obj | None:
    db = _database(config, dev)
    if db is None:
        return None
    env: Obj = {"POSTGRES_DB": db.database, "POSTGRES_USER": db.user}
    if dev:
        env["POSTGRES_HOST_AUTH_METHOD"] = "trust"
    else:
        env["POSTGRES_PASSWORD_FILE"] = "/run/secrets/db-password"  # noqa: S105 - a path
    service: Obj = {
        "environment": env,
        "healthcheck": {
            "interval": "5s",
            "retries": 10,
            "timeout": "3s",
            "test": ["CMD", "pg_isready", "-U", db.user, "-d", db.database],
        },
        "image": db.image,
        "volumes": ["pgdata:/var/lib/postgresql/data"],
    }
    if not dev:
        service["secrets"] = ["db-password"]
    return service


def prometheus_config(config: Config) -> str:
    job = {
        "job_name": config.prometheus_job,
        "metrics_path": config.probes.metrics_path,
        "static_configs": [{"targets": [f"{config.service.name}:{config.ops.port}"]}],
    }
    return dump({"global": {"scrape_interval": "15s"}, "scrape_configs": [job]})


def _host_port(config: Config, wanted: int) -> int:
    taken = {config.service.port, config.ops.port}
    while wanted in taken:
        wanted += 1
    return wanted


def development(config: Config, bundle_dir: str) -> str:
    name = config.service.name
    app = _app(config, dev=True, bundle_dir=bundle_dir)
    app["ports"] = [
        f"127.0.0.1:{config.service.port}:{config.service.port}",
        f"127.0.0.1:{config.ops.port}:{config.ops.port}",
    ]
    depends: Obj = {"redis": {"condition": "service_healthy"}}
    services: Obj = {
        name: app,
        "redis": {
            "healthcheck": {
                "interval": "5s",
                "retries": 10,
                "test": ["CMD", "redis-cli", "ping"],
                "timeout": "3s",
            },
            "image": REDIS_IMAGE,
        },
        "prometheus": {
            "depends_on": {name: {"condition": "service_healthy"}},
            "healthcheck": {
                "interval": "10s",
                "retries": 5,
                "timeout": "3s",
                "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/-/healthy"],
            },
            "image": PROMETHEUS_IMAGE,
            "ports": [f"127.0.0.1:{_host_port(config, 9090)}:9090"],
            "volumes": [f"./{PROMETHEUS_CONFIG}:/etc/prometheus/prometheus.yml:ro"],
        },
    }
    postgres = _postgres(config, dev=True)
    if postgres is not None:
        services["postgres"] = postgres
        depends["postgres"] = {"condition": "service_healthy"}
    app["depends_on"] = depends
    document: Obj = {"name": name, "services": services, "volumes": {STATE_VOLUME: {}}}
    if postgres is not None:
        document["volumes"]["pgdata"] = {}
    _, top = _compose_secrets(config, DEV_SECRETS)
    if top:
        document["secrets"] = top
    return dump(document)


def dev_secret_files(config: Config) -> dict[str, str]:
    """`secrets.dev/<secret>` for compose.yaml and `compose.dev.env` for its `${VAR:?}`
    interpolations: example values pointing at the compose services (the trust-auth database,
    redis); the rest CHANGE-ME. Development only: compose.prod.yaml reads `secrets/`."""
    files = (
        {
            f"{DEV_SECRETS}/{ref.secret}": secret_examples.example_value(config, ref, "compose-dev") + "\n"
            for ref in config.secret_refs()
        }
        if "kubernetes" in config.secrets.sources
        else {}
    )
    interpolated = _environment(config, dev=True)
    wanted = {item.env for item in facts.secret_envs(config) if str(interpolated[item.env]).startswith("${")}
    examples = secret_examples.env_examples(config, "compose-dev", runtime_refs=True)
    lines = ["# docker compose --env-file compose.dev.env up  (development values only)"]
    lines += [f"{var}={value}" for var, (value, _) in examples.items() if var in wanted]
    files[DEV_ENV] = "\n".join(lines) + "\n"
    return files


def _hardening(config: Config, res: Resources, networks: list[str]) -> Obj:
    """Limits as the Deployment's (memory request = limit; CPU limit, else the request) and
    reservations as its requests, so a host that cannot give them does not start the service."""
    limit_cpu = res.cpu_limit or res.cpu
    return {
        "cap_drop": ["ALL"],
        "deploy": {
            "resources": {
                "limits": {"cpus": str(cpu_cores(limit_cpu)), "memory": str(memory_bytes(res.memory))},
                "reservations": {"cpus": str(cpu_cores(res.cpu)), "memory": str(memory_bytes(res.memory))},
            }
        },
        "logging": {"driver": "json-file", "options": {"max-file": "5", "max-size": "10m"}},
        "networks": networks,
        "read_only": True,
        "restart": "unless-stopped",
        "security_opt": ["no-new-privileges:true"],
        "tmpfs": ["/tmp"],  # noqa: S108 - a private tmpfs
    }


def production(config: Config, bundle_dir: str) -> str:
    name = config.service.name
    res = config.deploy.resources
    app = {
        **_app(config, dev=False, bundle_dir=bundle_dir),
        **_hardening(config, res, ["front", "back"]),
    }
    app["ports"] = [f"{config.service.port}:{config.service.port}"]
    services: Obj = {name: app}
    _, top = _compose_secrets(config)
    volumes: Obj = {STATE_VOLUME: {}}
    postgres = _postgres(config, dev=False)
    db = config.deploy.database
    if postgres is not None and db is not None:
        dres = db.resources
        postgres.update(_hardening(config, dres, ["back"]))
        postgres["cap_add"] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
        postgres["tmpfs"] = ["/tmp", "/var/run/postgresql"]  # noqa: S108 - private tmpfs
        services["postgres"] = postgres
        app["depends_on"] = {"postgres": {"condition": "service_healthy"}}
        top["db-password"] = {"file": f"./secrets/{db.secret}.password"}
        volumes["pgdata"] = {}
    document: Obj = {
        "name": name,
        "networks": {"back": {"internal": True}, "front": {}},
        "services": services,
    }
    if top:
        document["secrets"] = top
    document["volumes"] = volumes
    return dump(document)


def files(config: Config, bundle_dir: str = "deploy") -> dict[str, str]:
    """`bundle_dir`: the bundle's path relative to the build context (the config's directory)."""
    return {
        "compose.yaml": development(config, bundle_dir),
        "compose.prod.yaml": production(config, bundle_dir),
        PROMETHEUS_CONFIG: prometheus_config(config),
        **dev_secret_files(config),
    }

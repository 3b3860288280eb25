"""`[deploy]`: how the service is packaged and run (image, replicas, resources, environments).

Everything a generated manifest needs that the runtime does not already know lives here, and is
validated here, so a value that cannot make a valid manifest fails at `pilothouse config check`
naming its key, not later in `kubectl apply`.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.credentials import sensitive_env_name
from pilothouse.config.secret_ref import SecretRef
from pilothouse.durations import Duration

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_K8S_VERSION = re.compile(r"^1\.\d{1,2}\.\d{1,2}$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^(\d+m|\d+(\.\d{1,3})?)$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def dns_label(value: str) -> str:
    """A Kubernetes object name part: DNS-1123 label, at most 63 characters."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError("expected a DNS-1123 label: lowercase letters, digits and '-', at most 63 chars")
    return value


def _memory(value: str) -> str:
    if not _MEMORY.match(value) or float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
        raise ValueError(
            "expected a Kubernetes memory quantity such as '256Mi' or '1Gi' "
            "(binary units Ki, Mi, Gi, Ti or decimal k, M, G, T; 'MB' and 'GB' are not units)"
        )
    return value


def _cpu(value: str) -> str:
    if not _CPU.match(value) or float(value.removesuffix("m")) <= 0:
        raise ValueError("expected a Kubernetes CPU quantity such as '250m', '1' or '1.5'")
    return value


def _env_keys(value: dict[str, object]) -> dict[str, object]:
    bad = sorted(k for k in value if not _ENV_NAME.match(k))
    if bad:
        raise ValueError(f"expected environment variable names (letters, digits, '_'); got {', '.join(bad)}")
    return value


def _no_credentials(value: dict[str, str]) -> dict[str, str]:
    """Plain env is printed into manifests, unit files and compose: a secret-named variable with a
    literal value would be published there."""
    named = sorted(k for k, v in value.items() if v and sensitive_env_name(k))
    if named:
        raise ValueError(
            f"{', '.join(named)} looks like a credential; move it to [deploy] secret_env as a "
            f'secret reference, e.g. {{ secret = "{named[0].lower().replace("_", "-")}" }}'
        )
    return value


MemoryQuantity = Annotated[str, Field(description="a Kubernetes memory quantity, e.g. '512Mi'")]
CpuQuantity = Annotated[str, Field(description="a Kubernetes CPU quantity, e.g. '500m'")]


class Resources(Section):
    """Requests and limits: memory request = limit (no OOM surprises), CPU limit = request unless set."""

    memory: MemoryQuantity = "256Mi"
    cpu: CpuQuantity = "250m"
    cpu_limit: CpuQuantity | None = None

    _check_memory = field_validator("memory")(_memory)
    _check_cpu = field_validator("cpu")(_cpu)

    @field_validator("cpu_limit")
    @classmethod
    def _check_cpu_limit(cls, value: str | None) -> str | None:
        return value if value is None else _cpu(value)


class ResourcesOverride(Section):
    """An environment's resources: each key set here replaces the base's, the others are kept."""

    memory: MemoryQuantity | None = None
    cpu: CpuQuantity | None = None
    cpu_limit: CpuQuantity | None = None

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str | None) -> str | None:
        return value if value is None else _memory(value)

    @field_validator("cpu", "cpu_limit")
    @classmethod
    def _check_cpu(cls, value: str | None) -> str | None:
        return value if value is None else _cpu(value)

    def over(self, base: Resources) -> Resources:
        return base.model_copy(update=self.model_dump(exclude_none=True))


class EnvironmentOverride(Section):
    """`[deploy.environments.NAME]`: what one Kustomize overlay changes."""

    replicas: Annotated[int, Field(ge=0)] | None = None
    max_replicas: Annotated[int, Field(ge=1)] | None = None
    resources: ResourcesOverride | None = Field(default=None, description="merged over [deploy].resources")
    namespace: str | None = Field(default=None, description="default: <deploy namespace>-<environment>")
    host: str | None = Field(default=None, description="Ingress host; default: <environment>.<deploy host>")
    tag: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    _check_env = field_validator("env")(_env_keys)
    _plain_env = field_validator("env")(_no_credentials)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return value if value is None else dns_label(value)


class DatabaseConfig(Section):
    """`[deploy.database]`: a PostgreSQL StatefulSet the service owns.

    Credentials come from the Kubernetes Secret of the `secret` group (keys `user`, `password`,
    `url`); the app reads its URL through a secret reference, never a literal.
    """

    enabled: bool = True
    image: str = "postgres:16.4-bookworm"
    storage: MemoryQuantity = "1Gi"
    database: str = "app"
    user: str = "app"
    secret: str = "db"  # noqa: S105 - a Secret group name, not a value
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    resources: Resources = Field(default_factory=lambda: Resources(memory="512Mi", cpu="250m"))

    _check_storage = field_validator("storage")(_memory)
    _check_secret = field_validator("secret")(dns_label)

    @field_validator("database", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", value):
            raise ValueError("expected a lowercase SQL identifier (letters, digits, '_')")
        return value


class MigrationsConfig(Section):
    """`[deploy.migrations]`: a command run with the app image before the app container starts."""

    command: Annotated[list[str], Field(min_length=1)]


UV_VERSION = "==0.13.9"
"""The uv that reads a project's uv.lock in the builder stage: pinned, like every install there."""

_PILOTHOUSE_SOURCE = re.compile(r"^(==\d[\w.+!-]*|[\w./-]+\.whl|git\+https://[^\s@]+@[\w./-]+)$")


class ContainerConfig(Section):
    """`[deploy.container]`: what goes into the image.

    The app's own dependencies come from where the project declares them (`project`, a directory
    with a pyproject.toml, and/or `requirements` files; hashes in them are enforced by pip); the
    Pilothouse extras are derived from the config; Pilothouse itself comes from `pilothouse`.
    """

    python: str = "3.11"
    base_image: str | None = Field(
        default=None, description="the image both stages start from; default python:<python>-slim-bookworm"
    )
    builder_image: str | None = Field(
        default=None, description="the builder stage's image when it must differ (default: base_image)"
    )
    pilothouse: str = Field(
        default_factory=lambda: f"=={version('pilothouse')}",
        description="where Pilothouse comes from: '==VERSION' (index or wheelhouse), a wheel in the "
        "build context ('wheels/pilothouse-0.1.0-py3-none-any.whl') or 'git+https://...@REF'",
    )
    project: str | None = Field(
        default=None, description="a directory in the build context with the app's pyproject.toml"
    )
    requirements: list[str] = Field(
        default_factory=list, description="requirements files in the build context (hashes are enforced)"
    )
    wheelhouse: str | None = Field(
        default=None, description="a directory of wheels in the build context: install with --no-index"
    )
    uv_lock: bool | None = Field(
        default=None,
        description="install the project's locked dependencies from <project>/uv.lock (the builder runs "
        "`uv export --frozen`, pip checks every hash); default: when that file exists",
    )
    uv: str = Field(
        default=UV_VERSION,
        description="the uv the builder stage installs to read uv.lock (never copied to the final image)",
    )
    extras: list[str] = Field(
        default_factory=list, description="Pilothouse extras beyond those the config implies"
    )
    app_paths: list[str] = Field(default_factory=list, description="default: the package of service.app")
    uid: Annotated[int, Field(ge=10000, le=65535)] = 10001
    source_url: str = ""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        if isinstance(data, dict) and "packages" in data:
            raise ValueError(
                "packages was removed: declare the app's dependencies in its pyproject.toml (`project`) "
                "or `requirements` files; the Pilothouse extras are derived from the config"
            )
        if isinstance(data, dict) and isinstance(data.get("requirements"), str):
            return {**data, "requirements": [data["requirements"]]}
        return data

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not re.match(r"^3\.\d{1,2}$", value):
            raise ValueError("expected a Python minor version such as '3.11'")
        return value

    @field_validator("pilothouse")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _PILOTHOUSE_SOURCE.match(value):
            raise ValueError(
                "expected a pinned version ('==0.1.0'), a wheel path in the build context "
                "('wheels/pilothouse-0.1.0-py3-none-any.whl') or 'git+https://HOST/REPO@REF'; "
                "a bare name would install whatever the index serves under it"
            )
        return value

    @field_validator("uv")
    @classmethod
    def _uv(cls, value: str) -> str:
        if not re.match(r"^==\d+(\.\d+){1,2}$", value):
            raise ValueError("expected a pinned uv version such as '==0.13.9'")
        return value

    @model_validator(mode="after")
    def _lock_needs_project(self) -> ContainerConfig:
        if self.uv_lock and self.project is None:
            raise ValueError(
                "uv_lock = true needs `project`: the directory holding pyproject.toml and uv.lock"
            )
        return self

    @field_validator("project", "wheelhouse", "requirements", "app_paths")
    @classmethod
    def _in_context(cls, value: str | list[str] | None) -> str | list[str] | None:
        for item in [value] if isinstance(value, str) else value or []:
            if item.startswith("/") or ".." in item.split("/") or not item.strip():
                raise ValueError(f"{item!r}: expected a relative path inside the build context")
        return value

    @field_validator("extras")
    @classmethod
    def _extras(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.match(r"^[a-z0-9][a-z0-9-]*$", item):
                raise ValueError(f"{item!r}: expected an extra name such as 'otlp-grpc'")
        return value


def _otlp_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL of an OTLP collector")
    return value


class ComposeConfig(Section):
    """`[deploy.compose]`: what the compose files need that Kubernetes does not."""

    otlp_endpoint: str | None = Field(
        default=None,
        description="the collector as a compose service sees it, e.g. 'http://otel-collector:4318'; "
        "default: none set (the Kubernetes [deploy].otlp_endpoint does not resolve in compose)",
    )

    _url = field_validator("otlp_endpoint")(_otlp_url)


class SystemdConfig(Section):
    """`[deploy.systemd]`: running without containers."""

    venv: str = "/opt/{name}/venv"
    working_directory: str = "/opt/{name}/app"
    config_path: str = "/etc/{name}/pilothouse.toml"
    environment_file: str = "/etc/{name}/{name}.env"
    user: str | None = Field(default=None, description="a fixed user; default DynamicUser=yes")
    database_unit: str | None = "postgresql.service"
    otlp_endpoint: str | None = Field(
        default=None, description="default: none set, the exporter's own http://localhost:4318 (a host agent)"
    )

    _url = field_validator("otlp_endpoint")(_otlp_url)

    @field_validator("venv", "working_directory", "config_path", "environment_file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value


class StateConfig(Section):
    """`[deploy.state]`: the pod's volume at the state directory (`[service] state_dir`).

    Default an emptyDir (lives as long as the pod). `persistent = true` puts a PersistentVolumeClaim
    (ReadWriteOnce) there instead: one pod mounts it, so it needs one replica in every environment
    and the rolling strategy (the Deployment then uses `Recreate`: the old pod lets go of the volume
    before the new one mounts it).
    """

    persistent: bool = False
    size: MemoryQuantity = "1Gi"
    storage_class: str | None = Field(default=None, description="default: the cluster's default class")

    _check_size = field_validator("size")(_memory)

    @field_validator("storage_class")
    @classmethod
    def _class(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", value):
            raise ValueError("expected a StorageClass name (lowercase letters, digits, '-' and '.')")
        return value


class BlueGreenConfig(Section):
    """`[deploy.blue_green]`: an Argo Rollouts blue-green rollout gated by the service's error rate."""

    auto_promote: bool = False
    max_error_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01
    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    window: Duration = 300.0
    checks: Annotated[int, Field(ge=1, le=100)] = 5


_DESTINATION = re.compile(r"^(?P<host>[A-Za-z0-9.*/-]+):(?P<port>\d{1,5})$")


class EgressConfig(Section):
    """`[deploy.egress]`: opt-in egress rules in the service's NetworkPolicy.

    With `enabled = true` the pod may reach only DNS and the destinations the config names (its
    checks, job store, Vault, OTLP endpoint, database, the services it calls) plus `allow`.
    """

    enabled: bool = False
    allow: list[str] = Field(
        default_factory=list,
        description="more destinations, 'host:port' or 'CIDR:port' (e.g. 'api.stripe.com:443')",
    )
    dns_namespace: str = "kube-system"

    @field_validator("allow")
    @classmethod
    def _destinations(cls, value: list[str]) -> list[str]:
        for item in value:
            match = _DESTINATION.match(item)
            if not match or not 1 <= int(match.group("port")) <= 65535:
                raise ValueError(f"{item!r} is not 'host:port' or 'CIDR:port' such as '10.0.0.0/8:5432'")
        return value

    _dns_namespace = field_validator("dns_namespace")(dns_label)


class DeployConfig(Section):
    """`[deploy]`: one model every deploy artifact (k8s, container, compose, systemd) is printed from."""

    image: str = ""
    tag: str | None = Field(default=None, description="default: service.version")
    kubernetes_version: str = "1.32.0"
    namespace: str | None = Field(default=None, description="default: service.name")
    replicas: Annotated[int, Field(ge=0)] = 2
    max_replicas: Annotated[int, Field(ge=1)] | None = Field(default=None, description="default: 2x replicas")
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 70
    pdb: bool | None = Field(default=None, description="default: a PodDisruptionBudget when replicas > 1")
    resources: Resources = Field(default_factory=Resources)
    environments: dict[str, EnvironmentOverride] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict, description="plain, non-secret environment")
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict, description="environment variables the app reads, from secrets"
    )
    expose: Literal["ingress", "nodeport", "none"] = "ingress"
    host: str | None = Field(default=None, description="Ingress host; default <name>.example.com")
    ingress_class: str = "nginx"
    ingress_namespace: str = "ingress-nginx"
    monitoring_namespace: str = "monitoring"
    service_monitor: bool = False
    otlp_endpoint: str = Field(
        default="http://otel-collector.monitoring.svc:4318",
        description="the collector as a pod sees it (Kubernetes DNS); compose and systemd have their own",
    )
    calls: list[str] = Field(default_factory=list, description="services of the stack this one calls")
    database: DatabaseConfig | None = None
    migrations: MigrationsConfig | None = None
    container: ContainerConfig = Field(default_factory=ContainerConfig)
    compose: ComposeConfig = Field(default_factory=ComposeConfig)
    systemd: SystemdConfig = Field(default_factory=SystemdConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    strategy: Literal["rolling", "blue-green"] = "rolling"
    blue_green: BlueGreenConfig = Field(default_factory=BlueGreenConfig)
    egress: EgressConfig = Field(default_factory=EgressConfig)

    _check_env = field_validator("env", "secret_env")(_env_keys)
    _plain_env = field_validator("env")(_no_credentials)

    @field_validator("namespace", "ingress_namespace", "monitoring_namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return value if value is None else dns_label(value)

    @field_validator("calls")
    @classmethod
    def _calls(cls, value: list[str]) -> list[str]:
        return [dns_label(v) for v in value]

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if value and not _IMAGE.match(value):
            raise ValueError("expected an image name without tag, e.g. 'registry.example.com/shop'")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value):
            raise ValueError("expected an image tag (letters, digits, '_', '.', '-')")
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _K8S_VERSION.match(value):
            raise ValueError("expected a Kubernetes version such as '1.32.0'")
        return value

    @field_validator("environments")
    @classmethod
    def _env_names(cls, value: dict[str, EnvironmentOverride]) -> dict[str, EnvironmentOverride]:
        for name in value:
            try:
                dns_label(name)
            except ValueError:
                raise ValueError(f"environment name {name!r} is not a DNS-1123 label") from None
        return value

    @model_validator(mode="after")
    def _replica_rules(self) -> DeployConfig:
        scopes: list[tuple[str, int, int | None]] = [("deploy", self.replicas, self.max_replicas)]
        for name, env in self.environments.items():
            replicas = self.replicas if env.replicas is None else env.replicas
            scopes.append((f"deploy.environments.{name}", replicas, env.max_replicas or self.max_replicas))
        for where, replicas, max_replicas in scopes:
            if self.pdb and replicas < 2:
                raise ValueError(
                    f"{where}.replicas is {replicas} but deploy.pdb = true needs at least 2 replicas "
                    "(a PodDisruptionBudget on fewer pods blocks every node drain)"
                )
            if max_replicas is not None and max_replicas < replicas:
                raise ValueError(f"{where}.max_replicas ({max_replicas}) is below replicas ({replicas})")
            if self.state.persistent and replicas > 1:
                raise ValueError(
                    f"{where}.replicas is {replicas} but deploy.state.persistent = true: its ReadWriteOnce "
                    "volume is mounted by one pod; use replicas = 1, or keep shared state in PostgreSQL "
                    "([jobs] url)"
                )
        if self.state.persistent and self.strategy == "blue-green":
            raise ValueError(
                "deploy.strategy is 'blue-green' but deploy.state.persistent = true: blue and green run "
                "at once and one ReadWriteOnce volume can be mounted by one pod; use strategy = 'rolling'"
            )
        return self

    def placed(self, service_name: str, environment: str) -> DeployConfig:
        """`effective(environment)` in the environment's namespace, behind its host: what the
        objects kustomize renders say (example Secrets, database URLs, analysis queries)."""
        return self.effective(environment).model_copy(
            update={
                "namespace": self.environment_namespace(service_name, environment),
                "host": self.environment_host(service_name, environment),
            }
        )

    def environment_namespace(self, service_name: str, environment: str) -> str:
        """Where an environment's objects go: its own namespace unless it names one."""
        override = self.environments[environment].namespace
        return override or f"{self.namespace or service_name}-{environment}"

    def environment_host(self, service_name: str, environment: str) -> str:
        """An environment's Ingress host: its own unless it names one."""
        return self.environments[environment].host or f"{environment}.{self.ingress_host(service_name)}"

    def ingress_host(self, service_name: str) -> str:
        return self.host or f"{service_name}.example.com"

    def effective(self, environment: str | None) -> DeployConfig:
        """This config with one environment's overrides applied (None: the base). The namespace
        and host stay the base's: selector labels derive from them and must not change (kustomize
        moves the objects); `placed` gives the environment's own."""
        if environment is None:
            return self
        env = self.environments[environment]
        changes: dict[str, object] = {"environments": {}}
        if env.replicas is not None:
            changes["replicas"] = env.replicas
        if env.max_replicas is not None:
            changes["max_replicas"] = env.max_replicas
        if env.resources is not None:
            changes["resources"] = env.resources.over(self.resources)
        if env.tag is not None:
            changes["tag"] = env.tag
        changes["env"] = {**self.env, **env.env}
        return self.model_copy(update=changes)


def check_deploy(service_name: str, admin_token_env: str, deploy: DeployConfig) -> None:
    """Cross-section rules: names the manifests derive from `[service]` must stay valid."""
    if len(service_name) > 50:
        raise ValueError(
            f"service.name {service_name!r} is {len(service_name)} characters; deploy objects append "
            "suffixes such as '-metrics', so at most 50 are allowed"
        )
    reserved = {"PILOTHOUSE_CONFIG", admin_token_env}
    envs = {"deploy": deploy.env}
    envs.update({f"deploy.environments.{n}": e.env for n, e in deploy.environments.items()})
    for name, env in envs.items():
        clash = sorted(reserved & set(env))
        if clash:
            raise ValueError(f"{name}.env sets {', '.join(clash)}, which the deploy bundle provides itself")
    clash = sorted(set(deploy.env) & set(deploy.secret_env))
    if clash:
        raise ValueError(f"deploy.env and deploy.secret_env both set {', '.join(clash)}")
    _environments_apart(service_name, deploy)


def _environments_apart(service_name: str, deploy: DeployConfig) -> None:
    """Two environments in one namespace, or behind one Ingress host, would share Secrets,
    objects or traffic (staging reading prod's database credentials): refuse it."""
    seen: dict[tuple[str, str], str] = {}
    for name in sorted(deploy.environments):
        places = [("namespace", deploy.environment_namespace(service_name, name))]
        if deploy.expose == "ingress":
            places.append(("host", deploy.environment_host(service_name, name)))
        for place in places:
            if place in seen:
                raise ValueError(
                    f"deploy.environments.{seen[place]} and deploy.environments.{name} both use "
                    f"{place[0]} '{place[1]}'; give each environment its own {place[0]}"
                )
            seen[place] = name

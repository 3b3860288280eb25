"""The root model of `pilothouse.toml`: one typed object every part of Pilothouse reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, model_validator

from pilothouse.config.backup import BackupConfig
from pilothouse.config.base import Section
from pilothouse.config.checks import CheckConfig
from pilothouse.config.deploy import DeployConfig, check_deploy
from pilothouse.config.jobs import JobsConfig
from pilothouse.config.lifecycle import LifecycleConfig
from pilothouse.config.maintenance import MaintenanceConfig
from pilothouse.config.monitoring import MonitoringConfig
from pilothouse.config.ops import OpsConfig
from pilothouse.config.probes import ProbesConfig
from pilothouse.config.protection import ProtectionConfig
from pilothouse.config.secret_ref import SecretRef
from pilothouse.config.secrets import SecretsConfig
from pilothouse.config.service import ServiceConfig
from pilothouse.config.slo import SloConfig
from pilothouse.config.telemetry import TelemetryConfig


class Config(Section):
    """The whole configuration. Build it with `pilothouse.config.load_config`."""

    service: ServiceConfig
    ops: OpsConfig = Field(default_factory=OpsConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    checks: list[CheckConfig] = Field(default_factory=list)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    slo: SloConfig = Field(default_factory=SloConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    jobs: JobsConfig | None = None
    protection: ProtectionConfig = Field(default_factory=ProtectionConfig)
    backup: BackupConfig | None = None
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.service.port == self.ops.port:
            raise ValueError(
                f"service.port and ops.port are both {self.ops.port}; "
                "the ops port must differ from the app port"
            )
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names must be unique; repeated: {', '.join(dupes)}")
        check_deploy(self.service.name, self.ops.admin_token_env, self.deploy)
        return self

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from, if any."""
        return self._source

    @property
    def prometheus_job(self) -> str:
        """The `job` label of this service's series: every rule, panel and generated scrape config
        uses it, and the ServiceMonitor relabels to it (`[monitoring].job`, default the name)."""
        return self.monitoring.job or self.service.name

    def state_path(self, path: str | Path) -> Path:
        """Where a state file the config names lives: absolute as given, else under `service.state_dir`
        (itself relative to the config file), else next to the config file."""
        base = Path(self.service.state_dir or ".")
        if not base.is_absolute() and self.source is not None:
            base = self.source.parent / base
        return base / path

    def check_timeout(self, check: CheckConfig) -> float:
        """A check's own timeout, else the probes default."""
        return check.timeout if check.timeout is not None else self.probes.check_timeout

    @property
    def readiness_timeout(self) -> float:
        """The longest a readiness answer can take: checks run concurrently, each under its own
        timeout, so the slowest check bounds it (the readiness probe's timeout must exceed it)."""
        return max((self.check_timeout(c) for c in self.checks), default=self.probes.check_timeout)

    def secret_refs(self) -> list[SecretRef]:
        """Every secret reference in the config, in file order (deploy and secrets read this)."""
        refs: list[SecretRef] = []

        def walk(value: object) -> None:
            if isinstance(value, SecretRef):
                refs.append(value)
            elif isinstance(value, Section):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self)
        return refs

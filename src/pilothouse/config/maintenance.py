"""`[maintenance]`: what the built-in maintenance jobs look after (schedule them with
`[[jobs.schedules]]`): Prometheus's admin API for cleanup, the certificates to watch (files or
https endpoints) with a renewal hook, the update check (`[maintenance.updates]`), and where the
daily operations report goes.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef, http_url
from pilothouse.durations import Duration

_CERT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


class CertificateConfig(Section):
    """One certificate: a PEM file (its first certificate) or what an https endpoint presents."""

    name: str = Field(description="a short name (the alert's `certificate` label)")
    file: str | None = Field(default=None, description="an absolute path of a PEM certificate")
    url: str | None = Field(default=None, description="an https:// endpoint (host and port)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _CERT_NAME.match(value):
            raise ValueError("expected lowercase letters, digits and '-' (at most 32 characters)")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("expected an https:// URL")
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> CertificateConfig:
        if (self.file is None) == (self.url is None):
            raise ValueError(f"certificate '{self.name}': set exactly one of `file` and `url`")
        return self


class UpdatesConfig(Section):
    """`pilothouse.updates`: what to check for available updates."""

    python: bool = Field(
        default=True, description="check the Python distributions installed where the job runs"
    )
    index_url: str = Field(
        default="https://pypi.org/pypi",
        description="a package index's JSON API (`<index_url>/<name>/json`, PyPI's form)",
    )
    packages: list[str] = Field(
        default_factory=list, description="check only these distributions (default: every one installed)"
    )
    ignore: list[str] = Field(default_factory=list, description="distributions never checked")
    apt: bool = Field(
        default=False, description="also check Debian packages (`apt-get -s upgrade --with-new-pkgs`)"
    )
    image: bool = Field(
        default=False,
        description="also check `[deploy].image` at its tag: the registry's digest against this host's copy",
    )
    registry_url: str | None = Field(
        default=None, description="the image registry's base URL (default: https://<the image's registry>)"
    )
    image_apply: list[str] = Field(
        default_factory=list,
        description="run (argv) when the registry has a newer image (pull, recreate); checked again after",
    )
    timeout: Duration = Field(default=10.0, description="per request to the index, and for apt-get")
    concurrency: int = Field(default=8, ge=1, le=64, description="index requests in flight at once")

    @field_validator("index_url")
    @classmethod
    def _index_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @field_validator("registry_url")
    @classmethod
    def _registry_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value).rstrip("/")


class MaintenanceConfig(Section):
    """Targets of the built-in maintenance jobs."""

    prometheus: str | None = Field(
        default=None, description="Prometheus's URL with --web.enable-admin-api (cleanup, report)"
    )
    certificates: list[CertificateConfig] = Field(default_factory=list)
    certificate_warning: Duration = Field(
        default=21 * 86400.0, description="a certificate expiring within this is a warning (RC 4)"
    )
    renew_command: list[str] = Field(
        default_factory=list, description="run (argv) when a certificate needs renewal; checked again after"
    )
    updates: UpdatesConfig | None = Field(
        default=None, description="check for available updates (`pilothouse.updates`); off when absent"
    )
    report_dir: str | None = Field(default=None, description="where the daily report is written")
    report_webhook: SecretRef | None = Field(
        default=None, description="a URL the report is POSTed to (a secret reference: it often has a token)"
    )

    @model_validator(mode="after")
    def _unique(self) -> MaintenanceConfig:
        names = [c.name for c in self.certificates]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"certificate names must be unique; repeated: {', '.join(repeated)}")
        return self

    @field_validator("prometheus")
    @classmethod
    def _prometheus(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("report_dir")
    @classmethod
    def _report_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

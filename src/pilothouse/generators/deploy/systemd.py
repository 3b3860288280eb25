"""A systemd service unit for running the service without containers, sandboxed.

`TimeoutStopSec` is the runtime's own shutdown budget (pre-stop wait, drain, flush) plus the
margin; nothing sleeps before SIGTERM here, unlike a Kubernetes preStop hook.
"""

from __future__ import annotations

import math

from pilothouse.config import Config
from pilothouse.generators.deploy import facts, secret_examples
from pilothouse.generators.deploy.quantity import cpu_cores, memory_bytes


def unit_name(config: Config) -> str:
    return f"{config.service.name}.service"


def _path(template: str, config: Config) -> str:
    return template.replace("{name}", config.service.name)


def unit(config: Config) -> str:
    s = config.deploy.systemd
    res = config.deploy.resources
    after = ["network-online.target", *([s.database_unit] if s.database_unit else [])]
    user = f"User={s.user}\nGroup={s.user}" if s.user else "DynamicUser=yes"
    env = "".join(
        f"Environment={k}={v}\n"
        for k, v in facts.plain_env(config, s.otlp_endpoint).items()
        if k not in {"PILOTHOUSE_CONFIG", "PYTHONPATH"}
    )
    cpu_quota = math.ceil(cpu_cores(res.cpu_limit or res.cpu) * 100)
    return f"""[Unit]
Description={config.service.name} {config.service.version} (pilothouse)
After={" ".join(after)}
Wants={" ".join(after)}
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=exec
ExecStart={_path(s.venv, config)}/bin/pilothouse serve --config {_path(s.config_path, config)}
WorkingDirectory={_path(s.working_directory, config)}
Environment=PILOTHOUSE_CONFIG={_path(s.config_path, config)}
Environment=PYTHONPATH={_path(s.working_directory, config)}
{env}EnvironmentFile=-{_path(s.environment_file, config)}
{user}
StateDirectory={facts.state_dir(config).removeprefix("/var/lib/")}
StateDirectoryMode=0700
Restart=on-failure
RestartSec=2s
KillSignal=SIGTERM
KillMode=mixed
TimeoutStartSec={facts.startup_window_seconds(config)}s
TimeoutStopSec={facts.stop_timeout_seconds(config)}s
MemoryMax={memory_bytes(res.memory)}
CPUQuota={cpu_quota}%
TasksMax=512
UMask=0077

# Sandboxing: `systemd-analyze security {unit_name(config)}` rates this unit.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=
DevicePolicy=closed
IPAddressDeny=
KeyringMode=private

[Install]
WantedBy=multi-user.target
"""


def environment_file_example(config: Config) -> str:
    """What the EnvironmentFile must define: every secret the service reads, by the variable the
    resolver's `env` source looks at (no Secret volume is mounted on a host), with example values
    pointing at the host's own database; passwords stay CHANGE-ME."""
    lines = [f"# Copy to {_path(config.deploy.systemd.environment_file, config)} (mode 0600) and fill in."]
    if "env" not in config.secrets.sources:
        lines.append("# [secrets].sources has no 'env': the secrets below come from another source.")
    for var, (value, what) in secret_examples.env_examples(config, "systemd", runtime_refs=True).items():
        lines += [f"# {what}", f"{var}={value}"]
    return "\n".join(lines) + "\n"


def files(config: Config) -> dict[str, str]:
    return {
        f"systemd/{unit_name(config)}": unit(config),
        f"systemd/{config.service.name}.env.example": environment_file_example(config),
    }

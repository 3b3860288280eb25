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


def _process(config: Config) -> str:
    """Where and as whom the service's processes run, and their limits (service and job units)."""
    s = config.deploy.systemd
    user = f"User={s.user}\nGroup={s.user}" if s.user else "DynamicUser=yes"
    env = "".join(
        f"Environment={k}={v}\n"
        for k, v in facts.plain_env(config, s.otlp_endpoint).items()
        if k not in {"PILOTHOUSE_CONFIG", "PYTHONPATH"}
    )
    return f"""WorkingDirectory={_path(s.working_directory, config)}
Environment=PILOTHOUSE_CONFIG={_path(s.config_path, config)}
Environment=PYTHONPATH={_path(s.working_directory, config)}
{env}EnvironmentFile=-{_path(s.environment_file, config)}
{user}
StateDirectory={facts.state_dir(config).removeprefix("/var/lib/")}
StateDirectoryMode=0700"""


def _limits(config: Config) -> str:
    res = config.deploy.resources
    cpu_quota = math.ceil(cpu_cores(res.cpu_limit or res.cpu) * 100)
    return f"""MemoryMax={memory_bytes(res.memory)}
CPUQuota={cpu_quota}%
TasksMax=512
UMask=0077"""


def _sandbox(unit: str) -> str:
    """The sandboxing every unit of the service gets (`systemd-analyze security` rates it)."""
    return f"""# Sandboxing: `systemd-analyze security {unit}` rates this unit.
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
KeyringMode=private"""


def _after(config: Config) -> str:
    s = config.deploy.systemd
    after = " ".join(["network-online.target", *([s.database_unit] if s.database_unit else [])])
    return f"After={after}\nWants={after}"


def pilothouse_command(config: Config, *args: str) -> str:
    """`<venv>/bin/pilothouse ARGS --config <config>` as the host runs it."""
    s = config.deploy.systemd
    binary = f"{_path(s.venv, config)}/bin/pilothouse"
    return " ".join([binary, *args, "--config", _path(s.config_path, config)])


def unit(config: Config) -> str:
    return f"""[Unit]
Description={config.service.name} {config.service.version} (pilothouse)
{_after(config)}
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=exec
ExecStart={pilothouse_command(config, "serve")}
{_process(config)}
Restart=on-failure
RestartSec=2s
KillSignal=SIGTERM
KillMode=mixed
TimeoutStartSec={facts.startup_window_seconds(config)}s
TimeoutStopSec={facts.stop_timeout_seconds(config)}s
{_limits(config)}

{_sandbox(unit_name(config))}

[Install]
WantedBy=multi-user.target
"""


def job_unit(
    config: Config, name: str, description: str, command: str, writable: tuple[str, ...] = ()
) -> str:
    """A oneshot service running one `pilothouse` command, sandboxed like the main unit (timers
    start it; a run still going when the timer elapses again is not started twice). `writable`:
    paths outside the state directory the job writes (ProtectSystem=strict makes the rest
    read-only); `-` lets the unit start when one does not exist yet."""
    extra = "".join(f"ReadWritePaths=-{path}\n" for path in writable)
    return f"""[Unit]
Description={description}
{_after(config)}

[Service]
Type=oneshot
ExecStart={command}
{_process(config)}
{extra}KillSignal=SIGTERM
KillMode=mixed
TimeoutStartSec=infinity
TimeoutStopSec={facts.stop_timeout_seconds(config)}s
{_limits(config)}

{_sandbox(name)}
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
    from pilothouse.generators.deploy import logrotate, timers

    return {
        f"systemd/{unit_name(config)}": unit(config),
        f"systemd/{config.service.name}.env.example": environment_file_example(config),
        **timers.files(config),
        **logrotate.files(config),
    }

"""`systemd/logrotate/<service>`: a logrotate file for the log directories the config backs up
(`[[backup.targets]] kind = "logs"`), for hosts run by systemd (install it in /etc/logrotate.d/).

Pilothouse itself writes no log files (its logs go to stdout: journald or the container runtime
rotate them), so the files rotated are those of the `logs` targets: `active` names the files
being written, rotated `rotate` times, daily. The settings keep backups cheap: `delaycompress`
leaves yesterday's file uncompressed, so restic stores a renamed file as chunks it already has and
a file is compressed (new bytes) once; `copytruncate` works with any writer that appends
(O_APPEND), at the cost of lines written during the copy; `dateext` is off so names stay stable.
"""

from __future__ import annotations

from pilothouse.config.model import Config


def stanza(path: str, active: str, rotate: int) -> str:
    return (
        f"{path.rstrip('/')}/{active} {{\n"
        "    daily\n"
        f"    rotate {rotate}\n"
        "    missingok\n"
        "    notifempty\n"
        "    compress\n"
        "    delaycompress\n"
        "    copytruncate\n"
        "    nodateext\n"
        "}\n"
    )


def files(config: Config) -> dict[str, str]:
    targets = [t for t in (config.backup.targets if config.backup else []) if t.kind == "logs"]
    if not targets:
        return {}
    header = (
        f"# logrotate for the log directories of {config.service.name}"
        ' ([[backup.targets]] kind = "logs").\n'
        f"# Install: cp this /etc/logrotate.d/{config.service.name}  (logrotate runs it daily)\n"
    )
    body = "\n".join(stanza(t.path or "", t.active, t.rotate) for t in targets)
    return {f"systemd/logrotate/{config.service.name}.conf": header + body}

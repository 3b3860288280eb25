"""The generated logrotate file, run by the real logrotate (forced, with its own state file) over
a log directory the config backs up: rotated as the backup expects (yesterday's file kept plain,
older ones compressed, the written file truncated in place), and absent without log targets."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

CONFIG = """
[service]
name = "lr"
[backup]
repository = "/var/backups/lr"
password = {{ secret = "backup.password" }}
{targets}
"""
LOGS = """
[[backup.targets]]
name = "applogs"
kind = "logs"
path = "{path}"
pattern = "*.log*"
rotate = 3
"""


def generate(tmp_path: Path, targets: str) -> Path:
    config = write_config(tmp_path, CONFIG.format(targets=targets))
    out = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def logrotate(conf: Path, state: Path) -> None:
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    argv = [binary, "--force", "--state", str(state), str(conf)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_generated_logrotate_rotates_the_log_targets(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    out = generate(tmp_path, LOGS.format(path=logs))
    conf = out / "systemd/logrotate/lr.conf"
    assert f"{logs}/*.log {{" in conf.read_text()
    (logs / "app.log").write_text("day one\n")
    (logs / "other.txt").write_text("not a log\n")
    state = tmp_path / "logrotate.state"
    logrotate(conf, state)
    assert (logs / "app.log").read_text() == ""  # copytruncate: the writer keeps its file
    assert (logs / "app.log.1").read_text() == "day one\n"  # delaycompress: plain for a day
    (logs / "app.log").write_text("day two\n")
    logrotate(conf, state)
    assert (logs / "app.log.1").read_text() == "day two\n"
    assert gzip.decompress((logs / "app.log.2.gz").read_bytes()) == b"day one\n"
    for day in ("three", "four", "five"):
        (logs / "app.log").write_text(f"day {day}\n")
        logrotate(conf, state)
    assert sorted(p.name for p in logs.iterdir()) == [
        "app.log",
        "app.log.1",
        "app.log.2.gz",
        "app.log.3.gz",
        "other.txt",  # rotate = 3
    ]


@pytest.mark.parametrize(
    "targets", ["", '[[backup.targets]]\nname = "d"\nkind = "directory"\npath = "/srv/d"']
)
def test_no_log_targets_no_logrotate_file(tmp_path: Path, targets: str) -> None:
    assert not (generate(tmp_path, targets) / "systemd/logrotate").exists()

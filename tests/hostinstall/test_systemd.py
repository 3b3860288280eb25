"""`pilothouse install systemd` inside a Debian root filesystem made by mmdebstrap (cached): the
unit passes `systemd-analyze verify --root`, a second run changes nothing, an upgrade then a
rollback return to the first version, and uninstall leaves exactly the files that were there.

Nothing is started: no systemd runs inside a chroot, so the test runs the installed venv's
`pilothouse config check` through chroot instead, and restarts are reported, not made."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli
from tests.wheels import build_wheel, hatch_project

CACHE = Path(os.environ.get("PILOTHOUSE_TEST_CACHE", Path.home() / ".cache" / "pilothouse-tests"))
ROOTFS_TAR = CACHE / "rootfs-bookworm-python-systemd.tar"
SKIP = ("proc", "sys", "dev", "run", "tmp")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _rootfs_tar() -> Path:
    if not ROOTFS_TAR.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = ROOTFS_TAR.with_suffix(".partial.tar")
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--include=python3,python3-venv,systemd,ca-certificates",
                "bookworm",
                str(partial),
            ],
            check=True,
            timeout=850,
        )
        partial.rename(ROOTFS_TAR)
    return ROOTFS_TAR


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(_rootfs_tar()) as tar:
        tar.extractall(root, filter="fully_trusted")
    return root


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-build-isolation",
            "-w",
            str(out),
            f"{ROOT}[schedules]",
        ],
        check=True,
        timeout=600,
    )
    for version in ("1.0", "1.1"):
        app = f'async def app(scope, receive, send):\n    """shopapp {version}"""\n'
        build_wheel(hatch_project(tmp_path_factory.mktemp("app"), "shopapp", version, app), out)
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path under the root (not the pseudo filesystems) with mode, size, mtime and link."""
    found = {}
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root)
        if rel_dir == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIP]
        for name in [*dirs, *files]:
            path = Path(directory) / name
            info = path.lstat()
            link = os.readlink(path) if path.is_symlink() else ""
            found[str(rel_dir / name)] = (info.st_mode, info.st_size, info.st_mtime_ns, link)
    return found


def install(config: Path, rootfs: Path, wheels: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "install",
        "systemd",
        "--config",
        str(config),
        "--prefix",
        str(rootfs),
        "--find-links",
        str(wheels),
        *args,
        timeout=600,
    )


def in_root(rootfs: Path, *cmd: str) -> str:
    done = subprocess.run(
        ["chroot", str(rootfs), *cmd],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return done.stdout.strip()


def installed_app_version(rootfs: Path) -> str:
    return in_root(
        rootfs,
        "/opt/shop/venv/bin/python",
        "-c",
        "import importlib.metadata as m; print(m.version('shopapp'))",
    )


def test_install_upgrade_rollback_uninstall(rootfs: Path, wheels: Path, tmp_path: Path) -> None:
    config = tmp_path / "pilothouse.toml"
    config.write_text('[service]\nname = "shop"\napp = "shopapp:app"\nversion = "1.0"\n')
    before = snapshot(rootfs)

    dry = install(config, rootfs, wheels, "--package", "shopapp==1.0", "--package", "pilothouse", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would enable shop.service" in dry.stdout
    assert snapshot(rootfs) == before

    first = install(config, rootfs, wheels, "--package", "shopapp==1.0", "--package", "pilothouse")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verified /etc/systemd/system/shop.service (systemd-analyze verify)" in first.stdout
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={rootfs}", "/etc/systemd/system/shop.service"],
        capture_output=True,
        text=True,
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    assert (rootfs / "etc/shop/shop.env").stat().st_mode & 0o777 == 0o600
    assert (rootfs / "etc/shop/pilothouse.toml").read_text() == config.read_text()
    assert os.readlink(rootfs / "etc/systemd/system/multi-user.target.wants/shop.service") == (
        "/etc/systemd/system/shop.service"
    )
    assert installed_app_version(rootfs) == "1.0"
    assert "ok — service 'shop'" in in_root(
        rootfs, "/opt/shop/venv/bin/pilothouse", "config", "check", "/etc/shop/pilothouse.toml"
    )

    assert "checked the config with shop 1.0 (pilothouse config check)" in first.stdout

    installed = snapshot(rootfs)
    again = install(config, rootfs, wheels, "--package", "shopapp==1.0", "--package", "pilothouse")
    assert again.returncode == 0, again.stderr
    assert "shop 1.0 is installed as configured; nothing changed" in again.stdout
    assert snapshot(rootfs) == installed

    # The upgrade brings a config change: checked by 1.1, installed with it, undone by rollback.
    first_config, first_unit = config.read_text(), (rootfs / "etc/systemd/system/shop.service").read_text()
    config.write_text(
        first_config.replace('version = "1.0"', 'version = "1.1"') + '[lifecycle]\ndrain_timeout = "50s"\n'
    )
    newer = install(
        config,
        rootfs,
        wheels,
        "--upgrade",
        "--version",
        "1.1",
        "--package",
        "shopapp==1.1",
        "--package",
        "pilothouse",
    )
    assert newer.returncode == 0, newer.stdout + newer.stderr
    assert os.readlink(rootfs / "opt/shop/venv") == "releases/1.1"
    assert installed_app_version(rootfs) == "1.1"
    assert (rootfs / "opt/shop/releases/1.0/bin/pilothouse").exists()  # beside, for the rollback
    assert "not restarted (not the running system)" in newer.stdout
    assert "checked the config with shop 1.1 (pilothouse config check)" in newer.stdout
    assert (rootfs / "etc/shop/pilothouse.toml").read_text() == config.read_text()
    assert "TimeoutStopSec=" in first_unit
    upgraded_unit = (rootfs / "etc/systemd/system/shop.service").read_text()
    assert "Description=shop 1.1 (pilothouse)" in upgraded_unit
    assert upgraded_unit.split("TimeoutStopSec=")[1] != first_unit.split("TimeoutStopSec=")[1]

    back = install(config, rootfs, wheels, "--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(rootfs / "opt/shop/venv") == "releases/1.0"
    assert installed_app_version(rootfs) == "1.0"
    assert (rootfs / "etc/shop/pilothouse.toml").read_text() == first_config
    assert (rootfs / "etc/systemd/system/shop.service").read_text() == first_unit

    kept = snapshot(rootfs)
    planned = install(config, rootfs, wheels, "--uninstall", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "would remove /etc/systemd/system/shop.service" in planned.stdout
    assert planned.stdout.splitlines()[-1].startswith("dry run: ")
    assert snapshot(rootfs) == kept

    gone = install(config, rootfs, wheels, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert set(snapshot(rootfs)) == set(before)


def test_an_upgrade_needs_an_install_and_a_plain_install_refuses_another_version(
    rootfs: Path, wheels: Path, tmp_path: Path
) -> None:
    config = tmp_path / "pilothouse.toml"
    config.write_text('[service]\nname = "other"\nversion = "2.0"\n')
    up = install(config, rootfs, wheels, "--upgrade", "--package", "pilothouse")
    assert up.returncode == 1
    assert up.stderr.strip() == (
        f"pilothouse: error: other is not installed under {rootfs} "
        "(no /var/lib/pilothouse-install/other.json)"
    )
    assert install(config, rootfs, wheels, "--package", "pilothouse").returncode == 0
    config.write_text('[service]\nname = "other"\nversion = "2.1"\n')
    plain = install(config, rootfs, wheels, "--package", "pilothouse")
    assert plain.returncode == 2
    assert plain.stderr.strip() == "pilothouse: error: other 2.0 is installed; use --upgrade to install 2.1"
    assert install(config, rootfs, wheels, "--uninstall").returncode == 0
    assert not (rootfs / "opt/other").exists()
    assert not (rootfs / "etc/other").exists()


def test_a_fixed_user_is_created_with_the_timers_and_removed_by_uninstall(
    rootfs: Path, wheels: Path, tmp_path: Path
) -> None:
    """`[deploy.systemd].user` missing on the host: a system user and group, no login shell,
    home the state directory; the provenance key is its own (0600); the schedule's timer is
    installed and enabled; uninstall deletes the user (an existing user is left alone)."""
    config = tmp_path / "pilothouse.toml"
    config.write_text(
        '[service]\nname = "ci"\nversion = "1.0"\n\n[deploy.systemd]\nuser = "cirunner"\n\n'
        '[jobs]\nscheduler = "systemd"\n\n[[jobs.schedules]]\njob = "pilothouse.prune-jobs"\n'
        'cron = "30 2 * * *"\n'
    )
    before = snapshot(rootfs)
    assert subprocess.run(["chroot", str(rootfs), "getent", "passwd", "cirunner"]).returncode == 2

    # The release's own config check refuses a venv without the extra the config needs: nothing
    # is switched, the release is removed, and what was made is recorded for the retry.
    lacking = install(config, rootfs, wheels, "--package", "pilothouse", "--provenance-key")
    assert lacking.returncode == 1, lacking.stdout + lacking.stderr
    assert "schedules need the `schedules` extra" in lacking.stderr
    assert not (rootfs / "opt/ci/venv").is_symlink() and not (rootfs / "opt/ci/releases/1.0").exists()

    first = install(config, rootfs, wheels, "--package", "pilothouse[schedules]", "--provenance-key")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "checked the config with ci 1.0 (pilothouse config check)" in first.stdout
    assert "create system user cirunner (no login shell, home /var/lib/ci)" in lacking.stdout
    entry = in_root(rootfs, "getent", "passwd", "cirunner").split(":")
    uid, gid, home, shell = int(entry[2]), int(entry[3]), entry[5], entry[6]
    assert (home, shell) == ("/var/lib/ci", "/usr/sbin/nologin")
    assert uid < 1000  # a system user (SYS_UID_MAX of login.defs)
    assert in_root(rootfs, "getent", "group", "cirunner").split(":")[2] == str(gid)
    assert not (rootfs / "var/lib/ci").exists()  # systemd makes it (StateDirectory=), owned right
    unit = (rootfs / "etc/systemd/system/ci.service").read_text()
    assert "User=cirunner\nGroup=cirunner\n" in unit and "DynamicUser" not in unit
    key = (rootfs / "etc/ci/provenance.key").stat()
    assert (key.st_uid, key.st_mode & 0o777) == (uid, 0o600)
    timer = "etc/systemd/system/ci-pilothouse-prune-jobs.timer"
    assert (rootfs / timer).is_file()
    assert (rootfs / "etc/systemd/system/ci-pilothouse-prune-jobs.service").is_file()
    assert os.readlink(rootfs / "etc/systemd/system/timers.target.wants/ci-pilothouse-prune-jobs.timer") == (
        f"/{timer}"
    )
    assert "ci-pilothouse-prune-jobs.timer" in first.stdout.split("(systemd-analyze verify)")[0]

    installed = snapshot(rootfs)
    again = install(config, rootfs, wheels, "--package", "pilothouse[schedules]", "--provenance-key")
    assert again.returncode == 0, again.stderr
    assert "ci 1.0 is installed as configured; nothing changed" in again.stdout
    assert snapshot(rootfs) == installed

    gone = install(config, rootfs, wheels, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "delete system user cirunner" in gone.stdout
    assert subprocess.run(["chroot", str(rootfs), "getent", "passwd", "cirunner"]).returncode == 2
    assert subprocess.run(["chroot", str(rootfs), "getent", "group", "cirunner"]).returncode == 2
    assert set(snapshot(rootfs)) == set(before)

    config.write_text('[service]\nname = "ci"\n\n[deploy.systemd]\nuser = "daemon"\n')
    existing = install(config, rootfs, wheels, "--package", "pilothouse", "--dry-run")
    assert existing.returncode == 0, existing.stderr
    assert "system user" not in existing.stdout  # the host's own user: used, never created

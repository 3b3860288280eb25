"""Install, upgrade, roll back and uninstall a service under systemd, idempotently.

Every change is a `step`: printed, and done unless `--dry-run`. Commands that must run on the
target system (venv, pip, useradd) run through `chroot` when the root is not `/`; systemctl and
systemd-analyze take `--root`. What was created is recorded in the state file (`state.py`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from pilothouse.config.model import Config
from pilothouse.errors import ConfigError, OperationError
from pilothouse.files import replace
from pilothouse.generators.deploy import facts, timers
from pilothouse.generators.deploy.systemd import environment_file_example, unit
from pilothouse.hostinstall.layout import Layout
from pilothouse.hostinstall.state import State


@dataclass
class Options:
    version: str
    packages: list[str] = field(default_factory=list)
    find_links: Path | None = None
    dry_run: bool = False
    provenance_key: bool = False


class Installer:
    def __init__(self, config: Config, root: Path, options: Options, say: Callable[[str], None]) -> None:
        if config.source is None:
            raise ConfigError("install needs a config file")
        self.config, self.options, self.say = config, options, say
        self.layout = Layout.of(config, root)
        self.state_path = self.layout.on_disk(self.layout.state)
        self.changed = 0
        self.planned: set[PurePosixPath] = set()

    # -- the steps ---------------------------------------------------------------------------
    def step(self, what: str, action: Callable[[], None]) -> None:
        self.changed += 1
        self.say(("would " if self.options.dry_run else "") + what)
        if not self.options.dry_run:
            action()

    def _run(self, *cmd: str, inside: bool = True) -> None:
        full = list(cmd)
        if inside and self.layout.root.resolve() != Path("/"):
            full = ["chroot", str(self.layout.root), *cmd]
        # No bytecode beside the system's Python: everything written must be something recorded.
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(full, capture_output=True, text=True, timeout=600, check=False, env=env)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise OperationError(f"{' '.join(cmd[:3])}… failed: {detail[-1] if detail else done.returncode}")

    def _mkdir(self, state: State, path: PurePosixPath, mode: int) -> None:
        missing = [
            p
            for p in [*reversed(path.parents), path]
            if not self.layout.on_disk(p).exists() and p not in self.planned
        ]
        self.planned.update(missing)  # a dry run plans each directory once
        for part in missing:
            self.step(f"create directory {part} ({mode:o})", partial(self._make_dir, state, part, mode))

    def _make_dir(self, state: State, path: PurePosixPath, mode: int) -> None:
        self.layout.on_disk(path).mkdir(mode=mode)
        os.chmod(self.layout.on_disk(path), mode)
        state.remember(str(path))

    def _write(self, state: State, path: PurePosixPath, text: str, mode: int) -> None:
        target = self.layout.on_disk(path)
        if target.is_file() and target.read_text() == text and target.stat().st_mode & 0o777 == mode:
            return
        if target.exists() and str(path) not in state.created:
            raise OperationError(f"{path}: exists and was not installed by pilothouse; move it away first")

        def write() -> None:
            replace(target, text, mode)
            state.remember(str(path))

        self.step(f"write {path} ({mode:o})", write)

    def _release(self, state: State, version: str) -> None:
        release = self.layout.release(version)
        if version in state.releases and self.layout.on_disk(release / "bin" / "pilothouse").exists():
            return
        if not self.options.packages:
            raise ConfigError("--package: name what to install in the virtualenv (a wheel, 'shop==1.2')")
        self._mkdir(state, release.parent, 0o755)
        self.step(
            f"create virtualenv {release} and install {' '.join(self.options.packages)}",
            lambda: self._make_release(state, release, version),
        )

    def _make_release(self, state: State, release: PurePosixPath, version: str) -> None:
        try:
            self._fill_release(state, release, version)
        except BaseException:
            shutil.rmtree(self.layout.on_disk(release), ignore_errors=True)  # a retry starts clean
            raise

    def _fill_release(self, state: State, release: PurePosixPath, version: str) -> None:
        self._run("python3", "-m", "venv", str(release))
        pip = [
            str(release / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        links = self.options.find_links
        copied = None
        if links is not None:
            where = links
            if self.layout.root.resolve() != Path("/"):
                scratch = self.layout.on_disk(PurePosixPath("/var/tmp"))  # noqa: S108 - mkdtemp: private
                copied = Path(tempfile.mkdtemp(prefix="pilothouse-wheels-", dir=scratch))
                shutil.copytree(links, copied, dirs_exist_ok=True)
                where = Path("/") / copied.relative_to(self.layout.root)
            pip += ["--no-index", "--find-links", str(where)]
        try:
            self._run(*pip, *self.options.packages)
        finally:
            if copied is not None:
                shutil.rmtree(copied, ignore_errors=True)
        if not self.layout.on_disk(release / "bin" / "pilothouse").exists():
            raise OperationError(
                f"{release}: the packages installed no 'pilothouse' command (add pilothouse)"
            )
        state.releases.append(version)

    def _switch(self, state: State, version: str) -> None:
        """Point the venv path at `version` with one rename (never a moment without a venv)."""
        link = self.layout.on_disk(self.layout.venv)
        target = f"releases/{version}"
        if link.is_symlink() and os.readlink(link) == target:
            return
        if link.exists() and not link.is_symlink():
            raise OperationError(f"{self.layout.venv}: exists and is not a pilothouse release link")

        def switch() -> None:
            tmp = link.with_name(f".{link.name}.new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, link)
            state.remember(str(self.layout.venv))
            if state.current != version:
                state.previous, state.current = state.current, version

        self.step(f"switch {self.layout.venv} -> {target}", switch)

    def _units(self) -> dict[PurePosixPath, str]:
        """The service's unit and, with `scheduler = "systemd"`, each schedule's timer and job unit."""
        units = {self.layout.unit: unit(self.config)}
        for name, text in timers.files(self.config).items():
            units[self.layout.unit.parent / PurePosixPath(name).name] = text
        return units

    def _wants(self) -> dict[PurePosixPath, PurePosixPath]:
        """What `enable` links: the service into multi-user.target, each timer into timers.target."""
        base = PurePosixPath("/etc/systemd/system")
        return {
            path: base
            / ("timers.target.wants" if path.suffix == ".timer" else "multi-user.target.wants")
            / path.name
            for path in self._units()
            if path == self.layout.unit or path.suffix == ".timer"
        }

    def _write_units(self, state: State) -> None:
        self._mkdir(state, self.layout.unit.parent, 0o755)
        for path, text in self._units().items():
            self._write(state, path, text, 0o644)

    def _enable(self, state: State) -> None:
        lay = self.layout
        for path, wants in self._wants().items():
            if lay.on_disk(wants).is_symlink():
                continue

            def enable(path: PurePosixPath = path, wants: PurePosixPath = wants) -> None:
                if not lay.on_disk(wants.parent).exists():
                    self._make_dir(state, wants.parent, 0o755)
                self._run("systemctl", f"--root={lay.root}", "enable", path.name, inside=False)
                state.remember(str(wants))

            self.step(f"enable {path.name}", enable)

    def _user(self, state: State) -> None:
        """Create `[deploy.systemd].user` when the host has no such user: a system user and group,
        no login shell, home the state directory (systemd makes it, StateDirectory=)."""
        user = self.config.deploy.systemd.user
        if user is None or self._exists(user):
            return

        def create() -> None:
            self._run(
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                facts.state_dir(self.config),
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                f"{self.layout.name} (pilothouse)",
                user,
            )
            state.user = user

        self.step(f"create system user {user} (no login shell, home {facts.state_dir(self.config)})", create)

    def _exists(self, user: str) -> bool:
        """Whether the target system knows `user` (getent: local files, and LDAP or the like)."""
        cmd = ["getent", "passwd", user]
        if self.layout.root.resolve() != Path("/"):
            cmd = ["chroot", str(self.layout.root), *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode == 0

    def _verify(self) -> None:
        """systemd-analyze verify over the installed units (a check, not a change: runs every time)."""
        if self.options.dry_run:
            return
        units = [str(path) for path in self._units()]
        self._run("systemd-analyze", "verify", "--man=no", f"--root={self.layout.root}", *units, inside=False)
        self.say(f"verified {' '.join(units)} (systemd-analyze verify)")

    def _restart(self) -> None:
        name = self.layout.unit.name
        if self.layout.root.resolve() == Path("/") and Path("/run/systemd/system").is_dir():
            self.step(
                f"restart {name} (SIGTERM: readiness fails, requests drain)",
                lambda: self._run("systemctl", "try-restart", name, inside=False),
            )
        else:
            self.say(f"not restarted (not the running system): systemctl restart {name}")

    # -- the operations ----------------------------------------------------------------------
    def install(self) -> int:
        state = State.load(self.state_path) or State()
        return self._recorded(state, lambda: self._install(state))

    def upgrade(self) -> int:
        state = self._installed()
        return self._recorded(state, lambda: self._upgrade(state))

    def rollback(self) -> int:
        state = self._installed()
        return self._recorded(state, lambda: self._rollback(state))

    def _recorded(self, state: State, operation: Callable[[], int]) -> int:
        """Run `operation`; when it fails midway, still record what it made (so a second run
        and uninstall know those files are pilothouse's), then let the error out."""
        try:
            return operation()
        except BaseException:
            if not self.options.dry_run and self.changed:
                state.save(self.state_path)
            raise

    def _install(self, state: State) -> int:
        version = self.options.version
        if state.current is not None and state.current != version:
            raise ConfigError(
                f"{self.layout.name} {state.current} is installed; use --upgrade to install {version}"
            )
        lay = self.layout
        self._user(state)
        for directory in (lay.config.parent, lay.working_directory):
            self._mkdir(state, directory, 0o755)
        assert self.config.source is not None
        self._write(state, lay.config, self.config.source.read_text(), 0o644)
        env_file = lay.on_disk(lay.environment_file)
        if not env_file.exists():
            self._mkdir(state, lay.environment_file.parent, 0o755)
            self._write(state, lay.environment_file, environment_file_example(self.config), 0o600)
        if self.options.provenance_key:
            key = lay.config.parent / "provenance.key"
            if not lay.on_disk(key).exists():
                from pilothouse.provenance.keys import generate

                user = self.config.deploy.systemd.user

                def make_key() -> None:
                    generate(lay.on_disk(key))
                    state.remember(str(key))
                    state.remember(f"{key}.pub")
                    if user is not None:  # the service signs job outputs with it: its own, still 0600
                        self._run("chown", f"{user}:{user}", str(key))

                self.step(f"generate provenance key {key} (600) and {key}.pub", make_key)
        self._release(state, version)
        self._check_config(state, version)
        self._switch(state, version)
        self._write_units(state)
        self._enable(state)
        self._verify()
        return self._finish(state, f"installed {lay.name} {version}")

    def _upgrade(self, state: State) -> int:
        version = self.options.version
        if state.current == version:
            self.say(f"{self.layout.name} {version} is already the current version; nothing to do")
            return 0
        self._release(state, version)
        self._check_config(state, version)  # the new version accepts the new config, before anything moves
        assert self.config.source is not None
        self._write(state, self.layout.config, self.config.source.read_text(), 0o644)
        self._user(state)
        self._write_units(state)
        self._enable(state)
        self._switch(state, version)
        self._verify()
        self._restart()
        return self._finish(state, f"upgraded {self.layout.name} to {version} (back: --rollback)")

    def _rollback(self, state: State) -> int:
        """Back to the previous version with the config (and so the units) it ran with."""
        if state.previous is None:
            raise OperationError(f"{self.layout.name}: no previous version to roll back to")
        back = state.previous
        kept = self.layout.on_disk(self._kept(back))
        if kept.is_file():
            from pilothouse.config import load_config

            self._write(state, self.layout.config, kept.read_text(), 0o644)
            self.config = load_config(kept)
            self._write_units(state)
        self._switch(state, back)
        self._verify()
        self._restart()
        return self._finish(state, f"rolled {self.layout.name} back to {back}")

    def _kept(self, version: str) -> PurePosixPath:
        """The config a release was installed with, kept in the release for its rollback."""
        return self.layout.release(version) / "pilothouse.toml"

    def _check_config(self, state: State, version: str) -> None:
        """Keep the config in the release and have that release's `pilothouse config check` accept
        it (a check, not a change: it runs every time; the copy is rewritten only when it differs)."""
        if self.options.dry_run:
            return
        assert self.config.source is not None
        text = self.config.source.read_text()
        kept = self.layout.on_disk(self._kept(version))
        if not kept.is_file() or kept.read_text() != text:
            replace(kept, text, 0o644)
        binary = self.layout.release(version) / "bin" / "pilothouse"
        try:
            self._run(str(binary), "config", "check", str(self._kept(version)))
        except OperationError:
            if version != state.current:  # never switched to: gone, so a retry builds it again
                shutil.rmtree(self.layout.on_disk(self.layout.release(version)), ignore_errors=True)
                state.releases.remove(version)
            raise
        self.say(f"checked the config with {self.layout.name} {version} (pilothouse config check)")

    def uninstall(self) -> int:
        state = self._installed()
        lay = self.layout
        names = [PurePosixPath(c).name for c in state.created if ".target.wants/" in c]
        if names:
            self.step(
                f"disable {' '.join(names)}",
                lambda: self._run("systemctl", f"--root={lay.root}", "disable", *names, inside=False),
            )
        for version in state.releases:
            release = lay.release(version)
            self.step(f"remove {release}", partial(shutil.rmtree, lay.on_disk(release), ignore_errors=True))
        for created in reversed(state.created):
            path = lay.on_disk(PurePosixPath(created))
            if path.is_symlink() or path.is_file():
                self.step(f"remove {created}", path.unlink)
            elif path.is_dir():
                self.step(f"remove directory {created}", path.rmdir)
        if state.user is not None:
            user = state.user
            self.step(f"delete system user {user}", lambda: self._run("userdel", user))
        self.step(f"remove {lay.state}", self.state_path.unlink)
        for directory in (lay.state.parent,):
            on_disk = lay.on_disk(directory)
            if on_disk.is_dir() and not any(on_disk.iterdir()):
                self.step(f"remove directory {directory}", on_disk.rmdir)
        self.say(
            f"dry run: {self.changed} change(s) not made"
            if self.options.dry_run
            else f"uninstalled {lay.name}"
        )
        return 0

    def _installed(self) -> State:
        state = State.load(self.state_path)
        if state is None:
            raise OperationError(
                f"{self.layout.name} is not installed under {self.layout.root} (no {self.layout.state})"
            )
        return state

    def _finish(self, state: State, done: str) -> int:
        if self.options.dry_run:
            self.say(f"dry run: {self.changed} change(s) not made")
            return 0
        if self.changed == 0:
            self.say(f"{self.layout.name} {state.current} is installed as configured; nothing changed")
            return 0
        state.save(self.state_path)
        self.say(done)
        self.say(
            f"next: fill in {self.layout.environment_file} (secrets), then "
            f"`systemctl start {self.layout.unit.name}` and `journalctl -u {self.layout.unit.name} -f`"
        )
        return 0

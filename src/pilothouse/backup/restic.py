"""The restic command line, the only way Pilothouse touches a repository.

The password (and an S3 repository's keys) reach restic in its environment (RESTIC_PASSWORD,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never on a command line. Every
failure becomes one OperationError line: a missing binary, a wrong password, a damaged repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilothouse.config.backup import BackupConfig
from pilothouse.errors import OperationError

TAG = "pilothouse"


class Restic:
    def __init__(self, settings: BackupConfig, password: str, env: dict[str, str] | None = None) -> None:
        """`env`: more of restic's environment (an S3 repository's keys)."""
        self.settings = settings
        self.env = {
            **os.environ,
            **(env or {}),
            "RESTIC_REPOSITORY": settings.repository,
            "RESTIC_PASSWORD": password,
            "RESTIC_PROGRESS_FPS": "0.2",
        }

    def argv(self, *args: str) -> list[str]:
        return [self.settings.restic, *args]

    def popen(self, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
        """A restic process in its own session (a cancel can end it and its children)."""
        try:
            return subprocess.Popen(
                self.argv(*args),
                env=self.env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise self.missing() from None

    def missing(self) -> OperationError:
        return OperationError(
            f"backup: restic binary {self.settings.restic!r} not found (install the Debian package "
            "'restic', or set [backup].restic)"
        )

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(
                self.argv(*args), env=self.env, input=stdin, capture_output=True, check=False
            )
        except FileNotFoundError:
            raise self.missing() from None
        if proc.returncode != 0:
            raise self.failure(args[0], proc.returncode, proc.stderr)
        return proc

    def failure(self, command: str, code: int, stderr: bytes) -> OperationError:
        lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = next(
            (line for line in lines if "Fatal" in line or "error" in line.lower()),
            lines[-1] if lines else f"exit code {code}",
        )
        return OperationError(
            f"backup: restic {command} failed on {self.settings.repository}: "
            f"{reason.removeprefix('Fatal: ').strip()}"
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout or b"null")

    def exists(self) -> bool:
        """Whether the repository was created (its `config` file marks it). For a remote one,
        restic is asked (`cat config`): a wrong password or an unreachable endpoint is an error,
        not a missing repository."""
        if not self.settings.remote:
            return (Path(self.settings.repository) / "config").exists()
        try:
            proc = subprocess.run(self.argv("cat", "config"), env=self.env, capture_output=True, check=False)
        except FileNotFoundError:
            raise self.missing() from None
        if proc.returncode == 0:
            return True
        if b"Is there a repository at the following location?" in proc.stderr:
            return False
        raise self.failure("cat", proc.returncode, proc.stderr)

    def ensure_repository(self) -> None:
        """Create the repository on first use."""
        if not self.exists():
            self.run("init")

    def preflight(self) -> None:
        """Before a run: the binary is there and, for an existing repository, the password opens it
        (one line now instead of a failed job later)."""
        import shutil

        if shutil.which(self.settings.restic) is None:
            raise self.missing()
        if self.exists() and not self.settings.remote:  # a remote one was opened to know
            self.run("cat", "config")

    def ensure_repository_exists(self) -> None:
        """Reading commands on a repository that was never written: one clear line."""
        if not self.exists():
            raise OperationError(
                f"backup: no restic repository at {self.settings.repository} "
                "(run `pilothouse backup run` first)"
            )

    def snapshots(self, *tags: str) -> list[dict[str, Any]]:
        args: Sequence[str] = ("--tag", ",".join((TAG, *tags)))
        found = self.json("snapshots", *args) or []
        return sorted(found, key=lambda s: str(s["time"]))

    def dump(self, snapshot: str, path: str) -> bytes:
        return self.run("dump", snapshot, path).stdout

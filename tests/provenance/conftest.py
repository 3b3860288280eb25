"""A git checkout with a small project, a signing key, and a real wheel `python -m build` made."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.wheels import build_wheel, hatch_project

REMOTE = "https://git.example/shop.git"


@dataclass
class Project:
    root: Path
    key: Path
    wheel: Path
    lock: Path

    @property
    def public(self) -> Path:
        return self.key.with_name(self.key.name + ".pub")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = hatch_project(tmp_path_factory.mktemp("shop"), "shop", "1.0", '"""The shop."""\n')
    lock = root / "requirements.lock"
    lock.write_text("starlette==0.37.2 --hash=sha256:" + "0" * 64 + "\n")
    (root / ".gitignore").write_text("dist/\n*.key\n*.pub\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", REMOTE)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "shop 1.0")
    wheel = build_wheel(root, root / "dist")
    key = root / "signing.key"
    made = run_cli("provenance", "keygen", "--key", str(key))
    assert made.returncode == 0, made.stderr
    return Project(root, key, wheel, lock)

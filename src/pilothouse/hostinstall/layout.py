"""Where an installed service lives, from `[deploy.systemd]`, under a root (`--prefix`).

Each version gets its own virtualenv in `releases/<version>` beside the configured venv path,
which is a symlink to the current one: switching versions is one atomic rename.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pilothouse.config.model import Config
from pilothouse.generators.deploy.systemd import unit_name


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path
    name: str
    venv: PurePosixPath  # paths as the host sees them once the root is mounted at /
    working_directory: PurePosixPath
    config: PurePosixPath
    environment_file: PurePosixPath
    unit: PurePosixPath
    state: PurePosixPath

    @classmethod
    def of(cls, config: Config, root: Path) -> Layout:
        s, name = config.deploy.systemd, config.service.name

        def path(template: str) -> PurePosixPath:
            return PurePosixPath(template.replace("{name}", name))

        return cls(
            root=root,
            name=name,
            venv=path(s.venv),
            working_directory=path(s.working_directory),
            config=path(s.config_path),
            environment_file=path(s.environment_file),
            unit=PurePosixPath("/etc/systemd/system") / unit_name(config),
            state=PurePosixPath("/var/lib/pilothouse-install") / f"{name}.json",
        )

    def release(self, version: str) -> PurePosixPath:
        return self.venv.parent / "releases" / version

    def on_disk(self, path: PurePosixPath) -> Path:
        """`path` inside the root."""
        return self.root / path.relative_to("/")

"""What an install created, kept on the host so a second run, an upgrade, a rollback and an
uninstall know exactly what is theirs (uninstall removes these and nothing else)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pilothouse.files import replace


@dataclass
class State:
    created: list[str] = field(default_factory=list)  # files, links and directories, in creation order
    releases: list[str] = field(default_factory=list)
    current: str | None = None
    previous: str | None = None
    user: str | None = None  # the system user install created (uninstall deletes it)

    @classmethod
    def load(cls, path: Path) -> State | None:
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    def remember(self, path: str) -> None:
        if path not in self.created:
            self.created.append(path)

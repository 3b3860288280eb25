"""A directory laid out like a Kubernetes Secret volume, with the kubelet's atomic update.

The kubelet writes `..<timestamp>/` with the keys, points `..data` at it and makes each key a
symlink `key -> ..data/key`. An update writes a new timestamped directory, creates `..data_tmp`
pointing at it and renames it over `..data` (atomic), then removes the old directory.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

_counter = itertools.count()


class SecretVolume:
    """One mounted Secret (a group such as `db`) under `root/<group>/`."""

    def __init__(self, root: Path, group: str, data: dict[str, str]) -> None:
        self.dir = root / group
        self.dir.mkdir(parents=True)
        self._current: Path | None = None
        self.update(data)
        for key in data:
            (self.dir / key).symlink_to(Path("..data") / key)

    def update(self, data: dict[str, str]) -> None:
        """Swap in a new set of values the way the kubelet does."""
        new = self.dir / f"..2024_01_01_00_00_{next(_counter):02d}.{os.getpid()}"
        new.mkdir()
        for key, value in data.items():
            (new / key).write_text(value)
        tmp = self.dir / "..data_tmp"
        tmp.symlink_to(new.name)
        os.replace(tmp, self.dir / "..data")
        if self._current is not None:
            shutil.rmtree(self._current)
        self._current = new

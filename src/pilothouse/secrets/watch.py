"""Noticing rotations: a background task that refreshes the store every `watch_interval`.

Polling is chosen over inotify on purpose: a Kubernetes Secret rotation is an atomic rename of
the `..data` symlink in the mount directory (watches on the key files themselves go stale), a
`.env` file is often replaced by an editor, and Vault has no file at all. Re-reading a few small
files every couple of seconds catches all of them with one mechanism; Vault reads are rate-limited
by the provider's own `refresh_interval` and lease schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pilothouse.secrets.live import SecretStore

log = logging.getLogger("pilothouse.secrets")


class Watcher:
    """Runs `store.refresh()` in a worker thread every `interval` seconds and notifies
    subscribers on the event loop."""

    def __init__(self, store: SecretStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="pilothouse-secrets-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def check_now(self) -> None:
        """One refresh and notification round (also what each tick does)."""
        changed = await asyncio.to_thread(self.store.refresh)
        await self.store.notify(changed)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_now()
            except Exception:  # a bug here must not kill rotation for good
                log.exception("secret refresh failed")

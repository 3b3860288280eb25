"""The pipe between the `--workers` supervisor and each worker: readiness questions and answers.

The supervisor sends a request number; the worker answers `(number, failures)`, the failing
critical checks of its own readiness (empty when ready). Answers to requests that timed out on
the supervisor's side arrive late and are skipped by number.
"""

from __future__ import annotations

import asyncio
import threading
from multiprocessing.connection import Connection

from pilothouse.runtime.checks import CheckFailed
from pilothouse.runtime.runtime import Runtime

ANSWER_LIMIT = 30.0
"""Seconds a worker waits for its own readiness report before answering that it is unavailable."""


class ReadinessAsker:
    """The supervisor's end of one worker's pipe (blocking; call it from a thread)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.asked = 0

    def ask(self, timeout: float) -> list[str]:
        """The worker's failing critical checks; CheckFailed if it does not answer in time."""
        with self.lock:
            self.asked += 1
            self.conn.send(self.asked)
            while True:
                if not self.conn.poll(timeout):
                    raise CheckFailed("no answer from the worker")
                answer, failures = self.conn.recv()
                if answer == self.asked:  # skip late replies to requests that timed out
                    return list(failures)


def answer_readiness(conn: Connection, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
    """The worker's end: answer every question with the failing critical checks, until the pipe
    closes. Runs in a thread; the checks run on the worker's event loop `loop`."""
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if not runtime.lifecycle.accepting_traffic:
            failures = [f"worker {runtime.lifecycle.state}"]
        else:
            try:
                report = asyncio.run_coroutine_threadsafe(runtime.readiness(), loop).result(ANSWER_LIMIT)
                failures = [f"{r.name}: {r.error}" for r in report.results if not r.ok and r.critical]
            except Exception as exc:  # the loop is closing: answer rather than leave the supervisor waiting
                failures = [f"readiness unavailable: {type(exc).__name__}"]
        try:
            conn.send((request, failures))
        except OSError:
            return

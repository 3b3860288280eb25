"""A TCP forwarder the tests control, to make a real dependency disappear and come back.

Modes: "forward" (relay to the target), "closed" (nothing listens: connection refused),
"blackhole" (the port listens but never accepts or answers: drivers hang until their timeout),
"frozen" (like a stopped server process: connections stay open, and new ones are accepted, but
nothing is relayed or answered any more).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Literal

Mode = Literal["forward", "closed", "blackhole", "frozen"]


def pipe(src: socket.socket, dst: socket.socket, relaying: Callable[[], bool] = lambda: True) -> None:
    """Copy what `src` receives to `dst` (dropped while `relaying()` is false) until either end
    closes, then shut both down."""
    try:
        while data := src.recv(65536):
            if relaying():
                dst.sendall(data)
    except OSError:
        pass
    finally:
        for end in (src, dst):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class TcpGate:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.mode: Mode = "closed"

    def set(self, mode: Mode) -> None:
        if mode == "frozen":
            self.mode = mode  # the pipes and the accept loop read it and go silent
            return
        self._close_listener()
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self.mode = mode
        if mode == "closed":
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        if mode == "forward":
            self._stop = threading.Event()
            threading.Thread(target=self._accept_loop, args=(listener, self._stop), daemon=True).start()

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.mode == "frozen":
                self._conns.append(client)  # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        pipe(src, dst, lambda: self.mode != "frozen")

    def _close_listener(self) -> None:
        self._stop.set()
        if self._listener is not None:
            # shutdown() wakes a thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def close(self) -> None:
        self.set("closed")

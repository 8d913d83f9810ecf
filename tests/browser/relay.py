"""A TCP relay in front of a server whose connections a test can cut, as a flaky network
(Wi-Fi dropping, a proxy restarting) does. Chromium's own offline emulation leaves open
streams alone, so a dropped stream needs a real broken connection."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress

from tests.integration.processes import free_port


class Relay:
    """Relays `127.0.0.1:<port>` to `target_port`; `cut()` resets every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def cut(self) -> int:
        """Reset (RST, not a clean close) every connection open now; how many there were."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)  # wakes its pipe thread's recv()
            sock.close()  # with a zero linger: a reset
        self.cuts += 1
        return len(sockets) // 2

    def close(self) -> None:
        self._listener.close()
        self.cut()

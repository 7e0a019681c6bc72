"""`PortForward`: like `ssh -L`, a local listening socket whose connections are relayed to a
target over the SSH transport's direct-tcpip channels."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import TYPE_CHECKING

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.host_protocol import POLL_S, READ_CHUNK

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

class PortForward:
    """A local listening socket whose connections are relayed over direct-tcpip channels."""

    def __init__(
        self, transport: paramiko.Transport, remote_host: str, remote_port: int, local_port: int
    ) -> None:
        self._transport = transport
        self._target = (remote_host, remote_port)
        try:
            self._listener = socket.create_server(("127.0.0.1", local_port))
        except OSError as exc:
            raise FluxdeployError(
                f"Cannot listen on local port {local_port} for the tunnel: {exc.strerror}.",
                fix="Choose another port (--local-port), or 0 for any free one.",
            ) from None
        self._listener.settimeout(POLL_S)
        self.local_port: int = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket | paramiko.Channel] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"fluxdeploy-forward-{self.local_port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(conn, peer), daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _relay(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            channel = self._transport.open_channel("direct-tcpip", self._target, peer, timeout=10)
        except Exception:  # noqa: BLE001 - the target was refused: drop this connection only
            conn.close()
            return
        with self._lock:
            self._open.update((conn, channel))
        try:
            _pump(conn, channel, self._closing)
        finally:
            with self._lock:
                self._open.difference_update((conn, channel))
            channel.close()
            conn.close()

    def close(self) -> None:
        """Stop accepting, close every relayed connection and wait for the threads to end."""
        self._closing.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for endpoint in list(self._open):
                with contextlib.suppress(Exception):
                    endpoint.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)


def _pump(conn: socket.socket, channel: paramiko.Channel, stop: threading.Event) -> None:
    """Copy bytes both ways until both sides finished sending; half-closes pass through."""
    reading: list[socket.socket | paramiko.Channel] = [conn, channel]
    try:
        while reading and not stop.is_set():
            readable, _, _ = select.select(reading, [], [], POLL_S)
            if conn in readable:
                data = conn.recv(READ_CHUNK)
                if data:
                    channel.sendall(data)
                else:
                    channel.shutdown_write()
                    reading.remove(conn)
            if channel in readable:
                data = channel.recv(READ_CHUNK)
                if data:
                    conn.sendall(data)
                else:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_WR)
                    reading.remove(channel)
                    if conn in reading and channel.closed:
                        return
    except (OSError, EOFError):
        pass

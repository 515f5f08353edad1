"""A TCP proxy on a fixed loopback port that can go away and come back: an endpoint outage.

Clients are pointed at the proxy instead of the server behind it. ``stop()`` closes the
listening socket and every open connection, so a client's next request, on a kept-alive
connection or a new one, fails as against an endpoint that is gone (connection reset or
refused); the server behind keeps its state. ``start()`` listens on the same port again.

Example:
    >>> import socket, threading
    >>> server = socket.create_server(("127.0.0.1", 0))
    >>> _ = threading.Thread(target=lambda: server.accept()[0].sendall(b"hello"), daemon=True).start()
    >>> proxy = TcpProxy(upstream=server.getsockname())
    >>> proxy.start()
    >>> with socket.create_connection(("127.0.0.1", proxy.port)) as client:
    ...     client.recv(5)
    b'hello'
    >>> proxy.stop()
    >>> socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
    Traceback (most recent call last):
    ...
    ConnectionRefusedError: [Errno 111] Connection refused
    >>> server.close()
"""

import selectors
import socket
import struct
import threading

__all__ = ["TcpProxy"]

_CHUNK = 1 << 16


class TcpProxy:
    """Forward ``127.0.0.1:port`` to ``upstream``; ``port=0`` picks a free port at the first start.

    Args:
        upstream: ``(host, port)`` of the server behind the proxy.
        port: the port to listen on (kept across ``stop()``/``start()``).
    """

    def __init__(self, *, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Listen (again) and forward until ``stop()``."""
        if self.running:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every connection; the port refuses connections until ``start()``."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError(f"the proxy on port {self.port} did not stop within 10 s")
        self._thread = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(f"the proxy on port {self.port} failed: {failure!r}") from failure

    def _serve(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}

        def close(connection: socket.socket) -> None:
            for side in (connection, peers.pop(connection, None)):
                if side is None:
                    continue
                peers.pop(side, None)
                try:
                    selector.unregister(side)
                except (KeyError, ValueError):
                    pass
                side.close()

        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.05):
                    if key.fileobj is listener:
                        try:
                            client, _ = listener.accept()
                        except BlockingIOError:
                            continue
                        try:
                            server = socket.create_connection(self.upstream, timeout=5)
                        except OSError:
                            client.close()
                            continue
                        for side in (client, server):
                            side.setblocking(True)
                            side.settimeout(10)
                            selector.register(side, selectors.EVENT_READ, None)
                        peers[client], peers[server] = server, client
                        continue
                    connection = key.fileobj
                    assert isinstance(connection, socket.socket)
                    try:
                        data = connection.recv(_CHUNK)
                        if data:
                            peers[connection].sendall(data)
                            continue
                    except (OSError, KeyError):
                        pass
                    close(connection)
        except BaseException as error:  # reported by stop()
            self._failure = error
        finally:
            for connection in list(peers):
                # Reset, not a polite FIN: the endpoint is gone, whatever was in flight is lost.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for connection in list(peers):
                close(connection)
            selector.close()
            listener.close()

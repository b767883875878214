"""A small plain-HTTP server for GET requests, on a thread of its own.

It answers the probes and the scrapes of the side port. One event loop on
one thread serves every connection, however many clients there are:
a thread per connection (http.server's ThreadingHTTPServer) let 3,000 slow
clients start 3,000 threads. Each connection must send its request within
`read_timeout_s`, headers at most `MAX_REQUEST_BYTES`, and is closed after
one answer; past `max_connections`, the oldest connection still sending its
request is closed, so a flood of slow clients cannot keep a probe out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger("podgate.health")

Route = Callable[[], tuple[int, bytes, str]]
MAX_REQUEST_BYTES = 8192
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def listen(host: str, port: int) -> socket.socket:
    """The listening socket (raises OSError when the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class SidePortServer:
    def __init__(
        self,
        routes: Mapping[str, Route],
        host: str,
        port: int,
        *,
        read_timeout_s: float = 5.0,
        max_connections: int = 256,
    ) -> None:
        self.routes = dict(routes)
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self._sock = listen(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._reading: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podgate-side-port", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, sock=self._sock, limit=MAX_REQUEST_BYTES)
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in list(self._reading):
                writer.close()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reading[writer] = None
        if len(self._reading) > self.max_connections:
            oldest = next(iter(self._reading))
            del self._reading[oldest]
            oldest.close()
        try:
            async with asyncio.timeout(self.read_timeout_s):
                method, path = await _read_request(reader)
                self._reading.pop(writer, None)
                code, body, content_type = self._answer(method, path)
                head = (
                    f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode("latin-1") + body)
                await writer.drain()
        except (
            TimeoutError,
            ValueError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # slow, oversized or gone: closed without an answer
        finally:
            self._reading.pop(writer, None)
            writer.close()

    def _answer(self, method: str, path: str) -> tuple[int, bytes, str]:
        if method != "GET":
            return 405, b"only GET\n", "text/plain"
        route = self.routes.get(path.split("?", 1)[0])
        if route is None:
            return 404, b"not found\n", "text/plain"
        try:
            return route()
        except Exception as exc:  # a scrape must never take the side port down
            log.exception("side port endpoint failed")
            return 500, f"{type(exc).__name__}\n".encode(), "text/plain"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of a request; its headers are read and ignored.
    Raises ValueError (or asyncio's LimitOverrunError) for anything that is
    not a request line and headers within MAX_REQUEST_BYTES."""
    line = await reader.readuntil(b"\r\n")
    size = len(line)
    while True:
        header = await reader.readuntil(b"\r\n")
        size += len(header)
        if size > MAX_REQUEST_BYTES:
            raise ValueError("request headers too large")
        if header == b"\r\n":
            break
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    return parts[0], parts[1]

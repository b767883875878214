"""What a connection may cost before it carries a request.

Anyone who can reach the admission port can open connections and send
nothing, or a ClientHello and nothing more. Each is bounded below the HTTP
protocol, at layers that stay whatever parses HTTP (httptools or h11):

- the kernel holds a connection that has sent no byte (TCP_DEFER_ACCEPT),
  so podgate allocates nothing for it until its ClientHello arrives, or
  until the deferral ends;
- the event loop closes one whose TLS handshake has not completed within
  `HANDSHAKE_TIMEOUT_S` (`ssl_handshake_timeout`, 60 s by default), and
  stops waiting for a closing peer's close_notify after `SHUTDOWN_TIMEOUT_S`;
- asyncio's TLS layer reads into a buffer of `TLS_READ_BUFFER` bytes per
  connection, not 256 KiB, allocated and zeroed for every connection
  accepted, handshake or not (uvloop's TLS layer allocates its 256 KiB
  without zeroing them, so only what a read fills becomes resident);
- past `--max-connections` open connections, the oldest idle one is
  aborted to make room (`ConnectionTracker`), so a client holding thousands
  of idle connections neither runs the process out of memory nor gets the next
  caller refused (uvicorn's own limit answers 503 past it: with
  `failurePolicy: Fail`, a refusal of every Pod write in the cluster);
- memory freed when connections close is handed back to the system
  (`MemoryTrimmer`): failed handshakes wait in reference cycles for a full
  collection, glibc keeps freed heap memory, and bursts of connections
  otherwise ratchet the process's footprint up to its limit.

`GuardedConnection` applies the tracker (and the client certificate's names,
with `--client-cn`) to whichever uvicorn HTTP protocol serves: it uses only
what uvicorn's h11 and httptools protocols share (`connection_made`,
`connection_lost`, `cycle`, `transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import socket
import ssl
import sys
import threading
import time
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, cast

from webhook.telemetry import metrics

log = logging.getLogger("podgate.server")

DEFER_ACCEPT_S = 5
HANDSHAKE_TIMEOUT_S = 5.0
SHUTDOWN_TIMEOUT_S = 5.0  # waiting for the peer's close_notify; asyncio's default is 30
# A TLS record carries 16 KiB at most: reading twice that at a time costs a
# large body a few more reads, and every idle connection 224 KiB less.
TLS_READ_BUFFER = 16 * 1024 + 512
TRIM_INTERVAL_S = 1.0


def defer_accept(sock: socket.socket, seconds: int = DEFER_ACCEPT_S) -> None:
    """Accept a connection only once its first bytes arrived (Linux); the
    kernel accepts a silent one anyway when `seconds` have passed."""
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, seconds)


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER) -> None:
    """asyncio's TLS protocol allocates its read buffer per connection, of
    the class's `max_size`. uvloop has a TLS layer of its own, whose buffer
    size is fixed when it is compiled."""
    sslproto.SSLProtocol.max_size = size


async def serve_tls(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    sock: socket.socket,
    context: ssl.SSLContext | None,
    backlog: int,
) -> asyncio.Server:
    """`loop.create_server` on a listening socket, with podgate's handshake timeout."""
    return await loop.create_server(
        protocol_factory,
        sock=sock,
        ssl=context,
        backlog=backlog,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
        ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )


class UvicornConnection(Protocol):
    """What uvicorn's HTTP protocols (h11 and httptools) have in common."""

    cycle: Any  # the request in progress: None before the first, then the last one
    transport: asyncio.Transport


def idle(connection: UvicornConnection) -> bool:
    cycle = connection.cycle
    return cycle is None or bool(cycle.response_complete)


def peer_names(peercert: Any) -> frozenset[str]:
    """The common names and DNS names of a verified client certificate."""
    if not isinstance(peercert, dict):
        return frozenset()
    names = {
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    }
    names |= {value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"}
    return frozenset(names)


class ConnectionTracker:
    """The open connections of one worker, oldest first.

    Past `limit`, the oldest idle ones (between requests, or before their
    first) are closed: a request in progress is never cut. With
    `client_names`, a connection whose verified client certificate names
    none of them is closed as soon as it is made.
    """

    def __init__(self, limit: int, client_names: frozenset[str] = frozenset()) -> None:
        self.limit = limit
        self.client_names = client_names
        self._open: dict[UvicornConnection, None] = {}  # insertion order: oldest first
        self._refusals = RefusalLog()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, connection: UvicornConnection, transport: asyncio.BaseTransport) -> bool:
        """Track a new connection; False when it must be closed at once."""
        if self.client_names:
            names = peer_names(transport.get_extra_info("peercert"))
            if not names & self.client_names:
                metrics.CONNECTIONS_CLOSED.labels("client-name").inc()
                self._refusals.refused(names, transport.get_extra_info("peername"))
                return False
        self._open[connection] = None
        if len(self._open) > self.limit:
            self._evict(len(self._open) - self.limit)
        metrics.CONNECTIONS.set(len(self._open))
        return True

    def closed(self, connection: UvicornConnection) -> None:
        if self._open.pop(connection, 0) is None:
            metrics.CONNECTIONS.set(len(self._open))

    def _evict(self, count: int) -> None:
        victims = []
        for connection in self._open:
            if idle(connection):
                victims.append(connection)
                if len(victims) == count:
                    break
        for connection in victims:
            del self._open[connection]
            # Aborted, not closed: a TLS close waits for the peer's close_notify,
            # and a flood's connections would pile up, memory and all, meanwhile.
            connection.transport.abort()
        metrics.CONNECTIONS_CLOSED.labels("evicted").inc(len(victims))


class RefusalLog:
    """A line per refused client certificate, at most one a second."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last = -interval_s
        self._unlogged = 0

    def refused(self, names: frozenset[str], peer: object) -> None:
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        fields = {
            "client_names": sorted(names)[:8],
            "client": str(peer),
            "refused_since_last_line": self._unlogged,
        }
        log.warning("closed a connection: its client certificate names no allowed client",
                    extra={"fields": fields})  # fmt: skip
        self._last, self._unlogged = now, 0


class GuardedConnection(asyncio.Protocol):
    """Mixed into uvicorn's HTTP protocol class: every connection is tracked
    by the worker's `ConnectionTracker` (set on the class made for it)."""

    tracker: ClassVar[ConnectionTracker]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.tracker.opened(cast(UvicornConnection, self), transport):
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tracker.closed(cast(UvicornConnection, self))
        super().connection_lost(exc)


def guarded(protocol: type[asyncio.Protocol], tracker: ConnectionTracker) -> type[asyncio.Protocol]:
    """`protocol` (one of uvicorn's HTTP protocol classes) under `tracker`."""
    return type(f"Guarded{protocol.__name__}", (GuardedConnection, protocol), {"tracker": tracker})


class MemoryTrimmer:
    """Hands freed heap memory back to the system after the process grew.

    glibc returns memory from the top of its heaps only, and raises its
    mmap threshold as large blocks are freed: after a burst of connections
    the freed blocks stay in the process. Every second, when the
    resident size grew by `GROWTH` since the last trim, a full collection
    frees what waits in reference cycles and `malloc_trim(0)` releases every
    free page of every heap. A trim during a burst finds its
    connections still open, so trimming goes on for `RETRIES` more rounds
    after growth, until the size is back within `GROWTH` of the smallest
    seen after a trim. It runs on a thread of its own (ctypes drops the GIL
    for the call), never on the event loop.
    """

    GROWTH = 8 * 1024 * 1024
    RETRIES = 30

    def __init__(self, interval_s: float = TRIM_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._trim = _malloc_trim()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._after_last = self._floor = resident_bytes()
        self._retries = 0

    def trim_if_grown(self) -> bool:
        if self._trim is None:
            return False
        if resident_bytes() >= self._after_last + self.GROWTH:
            self._retries = self.RETRIES
        elif self._retries > 0:
            self._retries -= 1
        else:
            return False
        # A connection that failed its handshake lives on in a reference cycle
        # (its exception's traceback), which only a full collection frees.
        gc.collect()
        self._trim(0)
        self._after_last = resident_bytes()
        self._floor = min(self._floor, self._after_last)
        if self._after_last < self._floor + self.GROWTH:
            self._retries = 0  # back where it was: nothing left to hand back
        return True

    def start(self) -> None:
        if self._trim is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.trim_if_grown()

        self._thread = threading.Thread(target=loop, name="podgate-trim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is not)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    call: Callable[[int], int] = trim
    return call

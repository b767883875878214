"""The HTTP protocol and event loop podgate serves on, and their guards.

podgate serves on uvicorn's fast stack, httptools on uvloop, where both are
installed, and falls back to h11 and asyncio's own loop, each on its own,
where either is missing. Whichever parses HTTP carries the same guards:

- a read deadline: a request, body included, must arrive within
  `read_timeout_s` of its first byte (or of the connection being made); a
  client that sends half a request and stalls is disconnected, and the app
  sees a disconnect instead of waiting forever (uvicorn only times out idle
  keep-alive connections);
- a request head (request line and headers) of at most `MAX_HEAD_BYTES`:
  over it the client gets a 400 and the connection is closed. h11 holds at
  most that much unparsed; httptools would buffer a header of any length;
- a connection that ended uncleanly drops its keep-alive timer at once:
  uvicorn cancels it only on a clean end, and otherwise the timer holds the
  closed connection, TLS buffers and all, for the keep-alive timeout;
- a response is written once: its head is held and written together with
  the first part of its body, one TLS record and one `send()`, where uvicorn
  writes the head and the body apart.

Connection counting, eviction and the client-certificate check are mixed
into either protocol by `webhook.server.connections.guarded`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("podgate.server")

# What h11 buffers at most before a request's head is complete (its default,
# handed to it explicitly): the same limit on either protocol.
MAX_HEAD_BYTES = 16 * 1024

StackChoice = Literal["auto", "h11"]


class HeldHead:
    """The transport a response cycle writes to, holding the response's head
    (whatever is written while `holding`) until the next write or close."""

    __slots__ = ("_held", "holding", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.holding = False
        self._held = b""

    def write(self, data: bytes) -> None:
        if self.holding:
            self._held += data
            return
        if self._held:
            data, self._held = self._held + data, b""
        self.transport.write(data)

    def close(self) -> None:
        if self._held:
            self.transport.write(self._held)
            self._held = b""
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


Send = Callable[[Any], Awaitable[None]]


def write_responses_once(cycle: Any) -> None:
    """Make uvicorn's request-response `cycle` (either protocol's) write its
    response's head with the first part of its body."""
    held = HeldHead(cycle.transport)
    cycle.transport = held
    send: Send = cycle.send

    async def send_in_one_write(message: Any) -> None:
        if message["type"] != "http.response.start":
            await send(message)
            return
        held.holding = True
        try:
            await send(message)
        finally:
            held.holding = False

    cycle.send = send_in_one_write


class ReadDeadline:
    """A per-connection timer: `arm` starts it unless it runs, `disarm` stops it."""

    __slots__ = ("_timer", "loop", "on_expiry", "seconds")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, on_expiry: Callable[[], None]
    ) -> None:
        self.loop, self.seconds, self.on_expiry = loop, seconds, on_expiry
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.seconds, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self.on_expiry()


def _log_read_timeout(client: object, seconds: float) -> None:
    log.info(
        "closing a connection whose request did not arrive in time",
        extra={"fields": {"client": str(client), "timeout_s": seconds}},
    )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with podgate's guards (see the module)."""

    read_timeout_s = 5.0
    _deadline: ReadDeadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = ReadDeadline(self.loop, self.read_timeout_s, self._read_expired)
        self._deadline.arm()

    def _receiving(self) -> bool:
        # IDLE after bytes arrived means a head in part (or nothing since the
        # handshake); idle keep-alive connections are left to uvicorn's timer.
        state = self.conn.their_state
        return state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._receiving():
            self._deadline.arm()  # a request has begun and is not complete
        else:
            self._deadline.disarm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            write_responses_once(self.cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.disarm()
        super().connection_lost(exc)
        self._unset_keepalive_if_required()

    def _read_expired(self) -> None:
        if self._receiving():
            _log_read_timeout(self.client, self.read_timeout_s)
            self.transport.close()


def _httptools_protocol() -> type[asyncio.Protocol]:
    """The guarded httptools protocol; ImportError where httptools is missing."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with podgate's guards (see the module).

        `_awaiting` is true from the connection being made, and from a
        request's first byte, until that request has arrived whole; `_in_head`
        until its headers are complete.
        """

        read_timeout_s = 5.0
        _deadline: ReadDeadline
        _awaiting = True
        _in_head = True
        _began = False  # a request began in the bytes being parsed
        _head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline = ReadDeadline(self.loop, self.read_timeout_s, self._read_expired)
            self._deadline.arm()

        def data_received(self, data: bytes) -> None:
            self._began = False
            super().data_received(data)
            if not self._awaiting or self.transport.is_closing():
                self._deadline.disarm()
                return
            self._deadline.arm()
            if self._in_head:
                # Bytes of an earlier request may share the read in which a
                # head began: that read is not counted, the next ones are, so
                # a head is cut at most one read past the limit.
                if not self._began:
                    self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._deadline.disarm()
                    self.send_400_response("Request head too large.")

        def on_message_begin(self) -> None:
            self._awaiting = self._in_head = self._began = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            before = self.cycle
            super().on_headers_complete()
            if self.cycle is not before:
                write_responses_once(self.cycle)

        def on_message_complete(self) -> None:
            self._awaiting = False
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._deadline.disarm()
            super().connection_lost(exc)
            self._unset_keepalive_if_required()

        def _read_expired(self) -> None:
            if self._awaiting and not self.transport.is_closing():
                _log_read_timeout(self.client, self.read_timeout_s)
                self.transport.close()

    return GuardedHttpToolsProtocol


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@dataclass(frozen=True)
class Stack:
    """What serves: the HTTP protocol class and the event loop's maker."""

    http: str
    loop: str
    protocol: type[asyncio.Protocol]
    loop_factory: LoopFactory | None  # None: asyncio's own
    missing: tuple[str, ...] = ()  # what the fast stack lacked here

    def protocol_with(self, read_timeout_s: float) -> type[asyncio.Protocol]:
        attrs = {"read_timeout_s": read_timeout_s}
        return type(self.protocol.__name__, (self.protocol,), attrs)

    def log(self) -> None:
        fields: dict[str, object] = {"http": self.http, "loop": self.loop}
        if self.missing:
            fields["not_installed"] = list(self.missing)
        log.info(f"serving HTTP with {self.http} on the {self.loop} event loop",
                 extra={"fields": fields})  # fmt: skip


def _uvloop_factory() -> LoopFactory:
    uvloop = importlib.import_module("uvloop")
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def choose_stack(choice: StackChoice = "auto") -> Stack:
    """httptools and uvloop where installed ("auto"), each on its own;
    h11 on asyncio's loop where asked or where they are not."""
    if choice == "h11":
        return Stack("h11", "asyncio", GuardedH11Protocol, None)
    missing: list[str] = []
    try:
        protocol, http = _httptools_protocol(), "httptools"
    except ImportError:
        protocol, http = GuardedH11Protocol, "h11"
        missing.append("httptools")
    try:
        factory: LoopFactory | None = _uvloop_factory()
        loop = "uvloop"
    except ImportError:
        factory, loop = None, "asyncio"
        missing.append("uvloop")
    return Stack(http, loop, protocol, factory, tuple(missing))

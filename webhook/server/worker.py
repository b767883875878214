"""One serving process: the app, its background threads, and uvicorn over TLS.

uvicorn is used as a library so that podgate controls what it does not
offer by itself: the TLS context (reloaded when the certificate files
change), the HTTP protocol and event loop with podgate's guards
(`webhook.server.protocols`), the TLS handshake timeout, and what SIGTERM
does (readiness off first, then a drain, then exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from policies.model import OFFLINE, Context
from webhook.cluster.cache import ClusterCache
from webhook.server.app import MAX_BODY, Handlers, create_app
from webhook.server.connections import (
    ConnectionTracker,
    MemoryTrimmer,
    guarded,
    limit_tls_read_buffer,
    serve_tls,
)
from webhook.server.deadline import AlarmDeadline
from webhook.server.handlers import Mutator, Validator
from webhook.server.protocols import MAX_HEAD_BYTES, StackChoice, choose_stack
from webhook.server.reload import ConfigHolder
from webhook.server.tls import ReloadingTLS
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder, EventSink
from webhook.telemetry.health import Slots
from webhook.telemetry.tracing import TracingSettings, start_tracing

log = logging.getLogger("podgate.server")


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs; plain values so it crosses a process spawn."""

    cert_file: str
    key_file: str
    config_path: str | None = None
    kubeconfig: str | None = None
    no_cluster: bool = False
    deadline_s: float = 2.5
    read_timeout_s: float = 5.0
    keep_alive_s: float = 60.0  # the API server reuses connections; handshakes are costly
    grace_s: float = 25.0
    shutdown_delay_s: float = 2.0
    config_poll_s: float = 2.0
    cache_stale_s: float = 60.0
    event_qps: float = 5.0
    event_burst: int = 25
    event_flush_s: float = 30.0
    max_connections: int = 4096  # this worker's; `serve` shares --max-connections out
    max_body: int = MAX_BODY
    cert_check_s: float = 1.0
    client_ca: str | None = None  # mutual TLS: callers present a certificate it signed
    client_names: frozenset[str] = frozenset()  # ...whose CN or DNS name is one of these
    tracing: TracingSettings | None = None  # None: off, and the SDK is never imported
    stack: StackChoice = "auto"  # httptools on uvloop where installed, or "h11" on asyncio


class PodgateServer(uvicorn.Server):
    """uvicorn.Server whose signals go through `on_signal` and are not re-raised,
    serving the sockets it is given with podgate's TLS handshake timeout."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own startup has no say over the handshake timeout; with
        # lifespan off, what it does for given sockets is this.
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        self.servers = [
            await serve_tls(loop, create_protocol, sock, config.ssl, config.backlog)
            for sock in sockets or []
        ]
        self.started = True

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(sig: int, frame: FrameType | None) -> None:
            self._on_signal(sig)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        slots: Slots,
        index: int = 0,
        on_terminate: Callable[[], None] | None = None,
        config: ConfigHolder | None = None,
        cache: ClusterCache | None = None,
        sink: EventSink | None = None,
    ) -> None:
        """`cache` and `sink` are the cluster's adapters, built by whoever
        starts the worker: without a cache nothing of the cluster is known
        (OFFLINE), without a sink no Event is sent."""
        self.settings = settings
        self.slots, self.index = slots, index
        self._on_terminate = on_terminate
        self.config = config or ConfigHolder(settings.config_path)
        self.cache = cache
        self.context: Context = cache if cache is not None else OFFLINE
        self.recorder = (
            EventRecorder(
                sink,
                qps=settings.event_qps,
                burst=settings.event_burst,
                flush_s=settings.event_flush_s,
            )
            if sink is not None
            else None
        )
        limit_tls_read_buffer()
        self.trimmer = MemoryTrimmer()
        self.tls = ReloadingTLS(
            Path(settings.cert_file),
            Path(settings.key_file),
            client_ca=Path(settings.client_ca) if settings.client_ca else None,
            check_interval=settings.cert_check_s,
        )
        self.connections = ConnectionTracker(settings.max_connections, settings.client_names)
        # the engine runs inline on the event loop, stopped at the deadline by
        # SIGALRM: a worker runs on its process's main thread
        self.deadline = AlarmDeadline()
        budget = settings.deadline_s
        # made here, in the worker: the exporter's thread would not survive a spawn
        self.tracer = start_tracing(settings.tracing) if settings.tracing is not None else None
        tracer = self.tracer
        self.handlers = Handlers(
            Validator(
                self.config, self.context, self.deadline,
                events=self.recorder, deadline_s=budget, tracer=tracer,
            ),
            Mutator(self.config, self.context, self.deadline, deadline_s=budget, tracer=tracer),
            draining=lambda: bool(self.slots.draining.value),
        )  # fmt: skip
        self.app = create_app(self.handlers, max_body=settings.max_body)
        self.stack = choose_stack(settings.stack)
        uconfig = uvicorn.Config(
            self.app,
            http=guarded(self.stack.protocol_with(settings.read_timeout_s), self.connections),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # the API server calls us directly; nothing to trust
            timeout_keep_alive=int(settings.keep_alive_s),
            timeout_graceful_shutdown=math.ceil(settings.grace_s),
        )
        uconfig.load()
        uconfig.ssl = self.tls.context
        self.server = PodgateServer(uconfig, self._signal)
        self._terminating = False

    # --- lifecycle ----------------------------------------------------------------
    def _signal(self, sig: int) -> None:
        if self._terminating:
            if sig == signal.SIGINT:
                self.server.force_exit = True
            return
        self._terminating = True
        log.info(
            "shutting down: readiness off, draining",
            extra={"fields": {"signal": signal.Signals(sig).name,
                              "delay_s": self.settings.shutdown_delay_s}},
        )  # fmt: skip
        self.slots.ready[self.index] = 0
        self.slots.draining.value = 1
        if self._on_terminate is not None:
            self._on_terminate()
        # keep serving while the endpoint is taken out of the Service, then stop
        timer = threading.Timer(self.settings.shutdown_delay_s, self.shutdown)
        timer.daemon = True
        timer.start()

    def shutdown(self) -> None:
        self.server.should_exit = True

    async def _heartbeat(self) -> None:
        while True:
            self.slots.beat[self.index] = time.monotonic()
            if not self._terminating:
                synced = self.cache is None or self.cache.synced
                self.slots.ready[self.index] = 1 if self.server.started and synced else 0
            if self.cache is not None:
                self.cache.update_metrics()
            metrics.pending.flush()
            await asyncio.sleep(0.5)

    async def serve(self, sock: socket.socket) -> None:
        if self.cache is not None:
            self.cache.start()
        if self.recorder is not None:
            self.recorder.start()
        self.config.start(self.settings.config_poll_s)
        self.trimmer.start()
        beat = asyncio.create_task(self._heartbeat())
        # Everything allocated so far lives as long as the process: keep it out
        # of the cyclic collector, whose full passes otherwise show up as p99.
        gc.collect()
        gc.freeze()
        try:
            await self.server.serve(sockets=[sock])
        finally:
            beat.cancel()
            metrics.pending.flush()
            self.slots.ready[self.index] = 0
            if self.recorder is not None:
                self.recorder.stop()
            if self.cache is not None:
                self.cache.stop()
            self.config.stop()
            self.trimmer.stop()
            if self.tracer is not None:
                self.tracer.shutdown()

    def run(self, sock: socket.socket) -> None:
        self.stack.log()
        try:
            with asyncio.Runner(loop_factory=self.stack.loop_factory) as runner:
                runner.run(self.serve(sock))
        finally:
            self.deadline.close()

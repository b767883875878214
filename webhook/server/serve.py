"""`podgate serve`: certificates, the side port, one worker or a supervisor of several.

With one worker everything runs in this process. With `--workers N` this
process binds the socket, serves the side port, keeps managed certificates
and supervises N spawned worker processes that share the socket; SIGTERM
turns readiness off here, waits `--shutdown-delay`, then asks the workers to
finish their in-flight requests and waits for them up to `--grace-period`.

Only the standard library is imported at module level: prometheus_client
picks its multiprocess mode when it is first imported, so the environment
must be set before any collector exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.server.worker import Worker, WorkerSettings
    from webhook.telemetry.health import Health, Slots
    from webhook.telemetry.tracing import TracingSettings

log = logging.getLogger("podgate.serve")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def bind(host: str, port: int) -> socket.socket:
    from webhook.server.connections import defer_accept

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only disables Nagle (TCP_NODELAY) on accepted
    # sockets whose proto is IPPROTO_TCP, and a response written in two parts
    # then waits for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    defer_accept(sock)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _prepare_multiprocess_metrics() -> None:
    from_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if from_env:
        path = Path(from_env)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # files of a previous run would be summed in
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="podgate-metrics-")


def _usage(message: str) -> int:
    print(f"podgate serve: {message}", file=sys.stderr)
    return EXIT_USAGE


def _certificates(args: argparse.Namespace, api_client: Any) -> tuple[str, str] | str:
    """The cert and key files to serve, or a usage error."""
    from webhook.server import tls

    sources = [bool(args.cert or args.key), args.self_signed, args.manage_certs]
    if sum(sources) != 1:
        return "give exactly one of --cert/--key, --self-signed or --manage-certs"
    cert_dir = Path(args.cert_dir)
    names = tls.service_names(args.service, args.namespace)
    if args.cert or args.key:
        if not (args.cert and args.key):
            return "--cert and --key go together"
        return args.cert, args.key
    if args.self_signed:
        extra_names, extra_ips = tls.split_sans(args.san)
        try:
            tls.ensure_self_signed(
                cert_dir, [*names, *extra_names], ip_addresses=(*tls.LOOPBACK_IPS, *extra_ips)
            )
        except OSError as exc:
            return (
                f"cannot write certificates to --cert-dir {cert_dir}: {_why(exc)}; "
                "give a directory podgate may write to"
            )
        log.info("self-signed certificates ready", extra={"fields": {"dir": str(cert_dir)}})
    else:
        from webhook.cluster.secrets import KubeSecretStore
        from webhook.cluster.webhook_configs import KubeWebhookConfigs
        from webhook.server.certs import CertManager

        if api_client is None:
            return "--manage-certs needs a cluster (--kubeconfig or in-cluster)"
        if not (args.cert_secret and args.namespace):
            return "--manage-certs needs --cert-secret and --namespace"
        manager = CertManager(
            KubeSecretStore(api_client),
            KubeWebhookConfigs(api_client),
            namespace=args.namespace,
            secret_name=args.cert_secret,
            dns_names=names,
            cert_dir=cert_dir,
            validating=args.validating_webhook,
            mutating=args.mutating_webhook,
            days=args.cert_days,
        )
        try:
            manager.sync()
        except OSError as exc:
            return (
                f"cannot write certificates to --cert-dir {cert_dir}: {_why(exc)}; "
                "give a directory podgate may write to"
            )
        except Exception as exc:  # the API server refused or could not be reached
            return f"cannot keep the certificate in Secret {args.cert_secret}: {_why(exc)}"
        manager.start(args.cert_sync_seconds)
    return str(cert_dir / tls.CERT_FILE), str(cert_dir / tls.KEY_FILE)


def settings_from(
    args: argparse.Namespace, cert: str, key: str, tracing: TracingSettings | None = None
) -> WorkerSettings:
    from webhook.server.worker import WorkerSettings

    return WorkerSettings(
        cert_file=cert,
        key_file=key,
        config_path=args.config,
        kubeconfig=args.kubeconfig,
        no_cluster=args.no_cluster,
        deadline_s=args.deadline,
        read_timeout_s=args.read_timeout,
        grace_s=args.grace_period,
        shutdown_delay_s=args.shutdown_delay,
        config_poll_s=args.config_poll_seconds,
        cache_stale_s=args.cache_stale_seconds,
        event_qps=args.event_qps,
        event_flush_s=args.event_flush_seconds,
        max_connections=args.max_connections // args.workers,
        client_ca=args.client_ca,
        client_names=frozenset(args.client_cn),
        tracing=tracing,
        stack=args.http_stack,
    )


def worker(settings: WorkerSettings, api_client: Any, **kwargs: Any) -> Worker:
    """A worker, handed the cluster's adapters (none without a cluster): the
    NetworkPolicy and Namespace caches and the Event sink."""
    from webhook.server.worker import Worker

    if api_client is None:
        return Worker(settings, **kwargs)
    from webhook.cluster.cache import cluster_cache
    from webhook.cluster.events import KubeEventSink

    cache = cluster_cache(api_client, stale_after_s=settings.cache_stale_s)
    sink = KubeEventSink(api_client, socket.gethostname())
    return Worker(settings, cache=cache, sink=sink, **kwargs)


def run(args: argparse.Namespace) -> int:
    """Every mistake found before serving is one line naming it, and exit 2."""
    if args.client_cn and not args.client_ca:
        return _usage("--client-cn needs --client-ca (the CA that signs the callers' certificates)")
    if args.max_connections < args.workers:
        return _usage("--max-connections must be at least --workers (each worker needs one)")
    from webhook.telemetry.tracing import TracingUnusable, tracing_settings

    try:
        tracing = tracing_settings(args.otlp_endpoint, args.trace_sample_ratio, os.environ)
    except TracingUnusable as exc:
        return _usage(str(exc))
    if args.workers > 1:
        _prepare_multiprocess_metrics()

    from policies.config import load_config
    from webhook.telemetry import logs
    from webhook.telemetry.health import Health, HealthServer, Slots

    logs.configure(args.log_level)
    load_config(args.config)  # fail fast with the field that is wrong (exit 2)
    try:
        sock = bind(args.host, args.port)
    except (OSError, OverflowError) as exc:
        return _usage(_cannot_listen("--port", args.host, args.port, exc))
    slots = Slots(args.workers)
    health = Health(slots)
    try:
        side = HealthServer(health, args.host, args.metrics_port)
    except (OSError, OverflowError) as exc:
        sock.close()
        return _usage(_cannot_listen("--metrics-port", args.host, args.metrics_port, exc))
    prepared = _prepare(args)
    if isinstance(prepared, str):
        sock.close()
        side.stop()
        return _usage(prepared)
    api_client, cert, key = prepared
    settings = settings_from(args, cert, key, tracing)
    side.start()
    log.info(
        "podgate serving",
        extra={"fields": {"port": sock.getsockname()[1], "metrics_port": side.port,
                          "workers": args.workers, "cluster": api_client is not None,
                          "config": args.config or "<built-in defaults>",
                          "client_ca": args.client_ca,
                          "tracing": _tracing_target(tracing)}},
    )  # fmt: skip
    try:
        if args.workers == 1:
            one = worker(settings, api_client, slots=slots, on_terminate=health.terminating.set)
            one.run(sock)
            return EXIT_OK
        return Supervisor(settings, sock, slots, health).run()
    finally:
        side.stop()
        log.info("podgate stopped")


def _tracing_target(tracing: TracingSettings | None) -> str | None:
    if tracing is None:
        return None
    return tracing.endpoint or "OTEL_EXPORTER_OTLP_* endpoint"


def _prepare(args: argparse.Namespace) -> tuple[Any, str, str] | str:
    """The cluster client (or None) and the certificate and key to serve, or
    the usage error that stops `serve`."""
    if args.client_ca and (why := _unusable_client_ca(args.client_ca)):
        return why
    try:
        api_client = None if args.no_cluster else _connect_or_none(args.kubeconfig)
        certs = _certificates(args, api_client)
    except _Unusable as exc:
        return str(exc)
    if isinstance(certs, str):
        return certs
    return _unusable_tls(*certs) or (api_client, *certs)


class _Unusable(Exception):
    """Something named on the command line cannot be used; the message says what to do."""


def _cannot_listen(flag: str, host: str, port: int, exc: Exception) -> str:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (
        f"cannot listen on {host}:{port} ({flag}): {why}; "
        f"stop what uses it or give {flag} another port"
    )


def _unusable_client_ca(client_ca: str) -> str:
    """Why --client-ca cannot be used, or "" when it can."""
    import ssl

    try:
        ssl.create_default_context(cafile=client_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return f"cannot load --client-ca {client_ca}: {_why(exc)}; give a PEM file of CAs"
    return ""


def _unusable_tls(cert: str, key: str) -> str:
    """Why the certificate and key cannot serve, or "" when they can."""
    import ssl

    from webhook.server import tls

    try:
        tls.server_context(Path(cert), Path(key))
    except (OSError, ssl.SSLError, ValueError) as exc:
        return (
            f"cannot load the certificate {cert} and key {key}: {_why(exc)}; "
            "give --cert and --key as PEM files of one key pair, or --self-signed"
        )
    return ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _connect_or_none(kubeconfig: str | None) -> Any:
    from webhook.cluster.client import connect

    try:
        return connect(kubeconfig)
    except Exception as exc:
        raise _Unusable(
            f"cannot use the cluster configuration: {_why(exc)}; "
            "give --kubeconfig, run in a cluster, or pass --no-cluster"
        ) from exc


# --- several workers ------------------------------------------------------------------


def worker_main(settings: WorkerSettings, sock: socket.socket, slots: Slots, index: int) -> None:
    """Entry point of a spawned worker process."""
    from webhook.telemetry import logs
    from webhook.telemetry.exit import leave

    logs.configure(os.environ.get("PODGATE_LOG_LEVEL", "info"))
    # Ctrl+C reaches the whole process group; the supervisor decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The supervisor already waited --shutdown-delay before it sends SIGTERM.
    settings = dataclasses.replace(settings, shutdown_delay_s=0.0)
    try:
        api_client = None if settings.no_cluster else _connect_or_none(settings.kubeconfig)
    except _Unusable as exc:
        log.error(str(exc))
        leave(EXIT_USAGE)
    worker(settings, api_client, slots=slots, index=index).run(sock)
    # multiprocessing would end the process with sys.exit, whose finalization
    # the worker's daemon threads can spoil (see webhook.telemetry.exit)
    leave(0)


class Supervisor:
    RESTART_WINDOW_S, MAX_RESTARTS = 60.0, 5

    def __init__(
        self, settings: WorkerSettings, sock: socket.socket, slots: Slots, health: Health
    ) -> None:
        self.settings, self.sock, self.slots, self.health = settings, sock, slots, health
        self._ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = [None] * len(slots)
        self._restarts: list[float] = []
        self._stop_requested = False

    def _spawn(self, index: int) -> None:
        self.slots.reset(index)
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.settings, self.sock, self.slots, index),
            name=f"podgate-worker-{index}",
        )
        proc.start()
        self.procs[index] = proc

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def run(self) -> int:
        from webhook.telemetry import metrics

        multiprocessing.allow_connection_pickling()
        os.environ["PODGATE_LOG_LEVEL"] = logging.getLevelName(logging.getLogger().level).lower()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for index in range(len(self.procs)):
            self._spawn(index)
        code = EXIT_OK
        while not self._stop_requested:
            time.sleep(0.2)
            for index, proc in enumerate(self.procs):
                if proc.is_alive():
                    continue
                metrics.mark_process_dead(proc.pid)
                now = time.monotonic()
                self._restarts = [t for t in self._restarts if now - t < self.RESTART_WINDOW_S]
                if len(self._restarts) >= self.MAX_RESTARTS:
                    log.error("workers keep dying; giving up")
                    self._stop_requested, code = True, EXIT_FAILED
                    break
                self._restarts.append(now)
                log.warning(
                    "worker exited; restarting",
                    extra={"fields": {"index": index, "exitcode": proc.exitcode}},
                )
                self._spawn(index)
        self._stop()
        return code

    def _stop(self) -> None:
        from webhook.telemetry import metrics

        self.health.terminating.set()
        self.slots.draining.value = 1
        log.info("shutting down: readiness off, draining",
                 extra={"fields": {"delay_s": self.settings.shutdown_delay_s}})  # fmt: skip
        time.sleep(self.settings.shutdown_delay_s)
        for proc in self.procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_s + 1.0
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("worker did not stop in time; killing it",
                          extra={"fields": {"pid": proc.pid}})  # fmt: skip
                proc.kill()
                proc.join(1.0)
            elif proc.exitcode:  # a crash at exit (negative: the signal) is worth a line
                log.warning("worker exited with %s", proc.exitcode,
                            extra={"fields": {"pid": proc.pid}})  # fmt: skip
            metrics.mark_process_dead(proc.pid)
        self.sock.close()
        directory = metrics.multiprocess_dir()
        if (
            directory
            and directory.startswith(tempfile.gettempdir())
            and "podgate-metrics-" in directory
        ):
            shutil.rmtree(directory, ignore_errors=True)

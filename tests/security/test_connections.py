"""What a client that only opens connections can do to the admission port:
idle keep-alive connections never get the next caller refused, connections
that never finish a TLS handshake are closed and their memory handed back.
Against the real server (uvicorn over TLS, in a process of its own)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import BASE_CONFIG, Server, metric, start_server, tls_context
from tests.integration.reviews import container, pod, review
from tests.webhook.fakes import wait_for
from webhook.server.connections import DEFER_ACCEPT_S, HANDSHAKE_TIMEOUT_S
from webhook.server.serve import bind

LIMIT = 40
NO_RESOURCES = pod("nores", "shop", container("web", resources={}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("connections"),
        config_text=BASE_CONFIG,
        max_connections=LIMIT,
        keep_alive_s=120.0,
        read_timeout_s=10.0,
    )
    yield srv
    srv.stop()


def _keep_alive(server: Server, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection that made one request and stays open, as the API server's do."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn = context.wrap_socket(raw, server_hostname="localhost")
    conn.sendall(b"GET /policies HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return conn


def _closed_by_peer(conn: socket.socket, within_s: float) -> bool:
    conn.settimeout(within_s)
    try:
        while True:
            if not conn.recv(65536):
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_listening_socket_defers_accept_until_bytes_arrive() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        deferred = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)
    finally:
        sock.close()
    assert deferred > 0  # the kernel rounds the seconds to its retransmission steps


def test_idle_keep_alive_connections_past_the_limit_never_refuse_a_review(
    server: Server,
) -> None:
    context = tls_context(server.ca_file)
    held = [_keep_alive(server, context) for _ in range(LIMIT * 3)]
    try:
        # uvicorn's own limit answered 503 here: with failurePolicy Fail, every
        # Pod write of the cluster refused
        for _ in range(5):
            answer = server.review("/validate", review(NO_RESOURCES))
            assert answer["allowed"] is False
            assert "require-resources" in answer["status"]["message"]
        text = server.metrics()
        assert metric(text, "podgate_connections") <= LIMIT
        assert metric(text, "podgate_connections_closed_total", reason="evicted") >= LIMIT * 2
        # the oldest idle connections were the ones closed
        assert _closed_by_peer(held[0], 2.0)
        assert not _closed_by_peer(held[-1], 0.2)
    finally:
        for conn in held:
            conn.close()


def test_a_connection_that_never_finishes_its_handshake_is_closed(server: Server) -> None:
    # the first bytes of a ClientHello: past TCP_DEFER_ACCEPT, then nothing more
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        stalled.sendall(b"\x16\x03\x01\x02\x00")
        started = time.monotonic()
        assert _closed_by_peer(stalled, HANDSHAKE_TIMEOUT_S + 5)
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT_S + 4
    finally:
        stalled.close()


def test_bursts_of_connects_without_a_client_hello_give_their_memory_back(
    server: Server,
) -> None:
    def burst(count: int) -> None:
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"\x16\x03\x01\x02\x00")  # past the deferral: accepted, handshake begun
            socks.append(sock)
        time.sleep(0.5)
        for sock in socks:
            sock.close()

    burst(200)  # warm-up: the allocator's arenas, the first handshakes
    time.sleep(1.0)
    baseline = _rss_kib(server.process.pid)
    for _ in range(4):
        burst(500)
    # MemoryTrimmer looks every second; asyncio's TLS buffers were 256 KiB each
    deadline = time.monotonic() + 15
    while _rss_kib(server.process.pid) > baseline * 1.25 and time.monotonic() < deadline:
        time.sleep(0.5)
    after = _rss_kib(server.process.pid)
    assert after <= baseline * 1.25, (baseline, after)
    answer = server.review("/validate", review(NO_RESOURCES))
    assert answer["allowed"] is False


def test_the_deferral_and_handshake_timeouts_are_bounded() -> None:
    # what the docs promise: a silent connection costs nothing for seconds, not minutes
    assert 0 < DEFER_ACCEPT_S <= 10
    assert 0 < HANDSHAKE_TIMEOUT_S <= 10


def test_a_review_in_progress_is_never_evicted(server: Server) -> None:
    context = tls_context(server.ca_file)
    busy = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    busy_tls = context.wrap_socket(busy, server_hostname="localhost")
    body, rest = b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"', b"}"
    busy_tls.sendall(
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(body) + len(rest)) + body
    )
    held = [_keep_alive(server, context) for _ in range(LIMIT * 2)]
    try:
        busy_tls.sendall(rest)  # the rest of the body, after the flood
        busy_tls.settimeout(5)
        answer = busy_tls.recv(65536)
        assert answer.startswith(b"HTTP/1.1 4"), answer[:200]  # answered (no request), not cut
    finally:
        busy_tls.close()
        for conn in held:
            conn.close()
    wait_for(lambda: metric(server.metrics(), "podgate_connections") <= LIMIT, timeout=5)


def test_connections_the_client_dropped_give_their_memory_back(tmp_path: Path) -> None:
    # Closed by the client without a TLS close_notify, as a crashing client or
    # a flood does: uvicorn's keep-alive timer held each one for its timeout.
    server = start_server(tmp_path, keep_alive_s=300.0)
    try:
        context = tls_context(server.ca_file)
        _keep_alive(server, context).close()  # warm-up
        time.sleep(1.0)
        baseline = _rss_kib(server.process.pid)
        held = [_keep_alive(server, context) for _ in range(400)]
        grown = _rss_kib(server.process.pid)
        for conn in held:
            conn.close()
        deadline = time.monotonic() + 20
        while _rss_kib(server.process.pid) > baseline * 1.15 and time.monotonic() < deadline:
            time.sleep(0.5)
        after = _rss_kib(server.process.pid)
        assert grown > baseline * 1.15, (baseline, grown)  # the test measures something
        assert after <= baseline * 1.15, (baseline, grown, after)
    finally:
        server.stop()

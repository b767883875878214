"""The metrics and health port under slow clients: one thread whatever their
number, each closed when its request has not arrived in time, and a probe
still answered while thousands of them are connected."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from webhook.telemetry.side_port import MAX_REQUEST_BYTES, SidePortServer


@pytest.fixture
def side() -> Iterator[SidePortServer]:
    routes = {"/healthz": lambda: (200, b"ok\n", "text/plain")}
    server = SidePortServer(routes, "127.0.0.1", 0, read_timeout_s=0.5, max_connections=50)
    server.start()
    yield server
    server.stop()


def _closed(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1024) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def test_slow_clients_take_no_thread_each_and_a_probe_still_answers(
    side: SidePortServer,
) -> None:
    threads_before = threading.active_count()
    slow = [socket.create_connection(("127.0.0.1", side.port)) for _ in range(400)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the end of the headers
        assert threading.active_count() == threads_before
        answer = httpx.get(f"http://127.0.0.1:{side.port}/healthz", timeout=5)
        assert answer.status_code == 200
        assert answer.text == "ok\n"
    finally:
        for sock in slow:
            sock.close()


def test_a_request_that_does_not_arrive_in_time_is_closed(side: SidePortServer) -> None:
    with socket.create_connection(("127.0.0.1", side.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert _closed(sock, 5.0)
        assert time.monotonic() - started < 3.0


def test_oversized_headers_are_closed_without_an_answer(side: SidePortServer) -> None:
    with socket.create_connection(("127.0.0.1", side.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * (MAX_REQUEST_BYTES * 2))
        assert _closed(sock, 5.0)


def test_only_get_and_known_paths(side: SidePortServer) -> None:
    base = f"http://127.0.0.1:{side.port}"
    assert httpx.post(f"{base}/healthz", timeout=5).status_code == 405
    assert httpx.get(f"{base}/nothing", timeout=5).status_code == 404
    assert httpx.get(f"{base}/healthz?verbose=1", timeout=5).status_code == 200

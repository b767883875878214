"""The guards hold on either HTTP stack: httptools on uvloop (what `auto`
picks where they are installed) and h11 on asyncio's loop (the fallback).

Against the real server (uvicorn over TLS, in a process of its own); the
fallback also as `podgate serve` run where httptools and uvloop cannot be
imported."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import reviews as rv
from tests.integration.harness import (
    Server,
    free_port,
    start_process,
    start_server,
    tls_context,
)
from webhook.server import tls
from webhook.server.protocols import MAX_HEAD_BYTES, choose_stack

FAST_INSTALLED = all(importlib.util.find_spec(m) for m in ("httptools", "uvloop"))
STACKS = ["auto", "h11"]


@dataclass(frozen=True)
class Address:
    port: int
    ca_file: Path


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp(f"stack-{request.param}"), stack=request.param)
    yield srv
    srv.stop()


def _address(server: Server) -> Address:
    return Address(server.port, server.ca_file)


def _connect(address: Address, *, tls12: bool = False) -> ssl.SSLSocket:
    """A TLS connection; with `tls12`, one on which nothing arrives before an
    answer (TLS 1.3 sends session tickets after the handshake)."""
    context = tls_context(address.ca_file)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", address.port), timeout=5)
    return context.wrap_socket(raw, server_hostname="localhost")


def _request(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _until_closed(conn: ssl.SSLSocket) -> bytes:
    """What the server sends until it closes the connection (a timeout fails)."""
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLEOFError):
        pass
    return data


def test_the_logs_say_which_stack_serves(server: Server, request: pytest.FixtureRequest) -> None:
    stack = choose_stack(request.node.callspec.params["server"])
    lines = [line for line in server.log_lines() if line.get("msg", "").startswith("serving HTTP")]
    assert lines, server.log_path.read_text()
    assert (lines[-1]["http"], lines[-1]["loop"]) == (stack.http, stack.loop)


def test_auto_picks_httptools_on_uvloop_where_installed() -> None:
    if not FAST_INSTALLED:
        pytest.skip("httptools or uvloop is not installed here")
    stack = choose_stack("auto")
    assert (stack.http, stack.loop, stack.missing) == ("httptools", "uvloop", ())
    assert (choose_stack("h11").http, choose_stack("h11").loop) == ("h11", "asyncio")


def _tls_records_of_one_answer(address: Address, path: str, body: bytes) -> tuple[int, bytes]:
    """How many TLS application-data records carried the answer to one request
    (TLS 1.2, whose record types are in the clear), and the answer."""
    context = tls_context(address.ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", address.port), timeout=5)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        sock.sendall(outgoing.read())
        tls.write(_request(path, body))
        sock.sendall(outgoing.read())
        raw, plain, records = b"", b"", 0
        while not _complete(plain):
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer was complete: {plain!r}"
            raw += chunk
            while len(raw) >= 5 and len(raw) >= 5 + int.from_bytes(raw[3:5], "big"):
                size = 5 + int.from_bytes(raw[3:5], "big")
                records += raw[0] == 23  # application_data
                incoming.write(raw[:size])
                raw = raw[size:]
            try:
                while part := tls.read(65536):
                    plain += part
            except ssl.SSLWantReadError:
                pass
        return records, plain
    finally:
        sock.close()


def _complete(plain: bytes) -> bool:
    head, sep, body = plain.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/validate", json.dumps(rv.review(rv.deployment())).encode(), 200),
        ("/mutate", json.dumps(rv.review(rv.deployment())).encode(), 200),
        ("/validate", b"{not json", 400),
    ],
    ids=["validate", "mutate", "refused"],
)
def test_each_answer_is_written_at_once(
    server: Server, path: str, body: bytes, status: int
) -> None:
    records, answer = _tls_records_of_one_answer(_address(server), path, body)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert records == 1, f"the answer came in {records} TLS records"


def test_a_head_over_the_limit_is_refused_and_closed(server: Server) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    request = _request("/validate", body, extra=f"X-Padding: {'a' * 2 * MAX_HEAD_BYTES}\r\n")
    conn = _connect(_address(server), tls12=True)
    try:
        for start in range(0, len(request), 4096):  # as a client trickling it in would
            conn.sendall(request[start : start + 4096])
            if select.select([conn], [], [], 0.1)[0]:
                break  # answered: what is sent after the close would reset the connection
        assert _until_closed(conn).startswith(b"HTTP/1.1 400 ")
    finally:
        conn.close()
    # the limit is the head's: one just under it is served
    near = _request("/validate", body, extra=f"X-Padding: {'a' * (MAX_HEAD_BYTES - 1024)}\r\n")
    conn = _connect(_address(server))
    try:
        conn.sendall(near)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        conn.close()


@pytest.mark.parametrize("partial", ["nothing", "headers", "body"])
def test_a_request_that_stalls_is_cut_off(server: Server, partial: str) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    request = _request("/validate", body)
    sent = {"nothing": b"", "headers": request[:60], "body": request[: -len(body) + 40]}[partial]
    conn = _connect(_address(server))
    try:
        if sent:
            conn.sendall(sent)
        started = time.monotonic()
        assert _until_closed(conn) == b"", "closed without an answer"
        waited = time.monotonic() - started
        assert 0.8 < waited < 3.0, waited  # the harness's read timeout is 1 s
    finally:
        conn.close()


def _answer(conn: ssl.SSLSocket) -> bytes:
    answer = b""
    while not _complete(answer):
        chunk = conn.recv(65536)
        assert chunk, f"closed after {answer!r}"
        answer += chunk
    return answer


def test_an_idle_keep_alive_connection_is_not_cut_at_the_read_timeout(server: Server) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    conn = _connect(_address(server))
    try:
        for _ in range(2):  # idle past the read timeout between the two
            conn.sendall(_request("/validate", body))
            assert _answer(conn).startswith(b"HTTP/1.1 200 ")
            time.sleep(1.5)
    finally:
        conn.close()


def test_a_later_request_that_stalls_is_cut_off(server: Server) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    conn = _connect(_address(server))
    try:
        conn.sendall(_request("/validate", body))
        assert _answer(conn).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.5)  # past the read timeout: only the next request's bytes start it
        conn.sendall(_request("/validate", body)[:60])
        started = time.monotonic()
        assert _until_closed(conn) == b""
        waited = time.monotonic() - started
        assert 0.8 < waited < 3.0, waited
    finally:
        conn.close()


def test_without_httptools_and_uvloop_serve_falls_back_to_h11(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    log_file = tmp_path / "serve.log"
    blocked = "import sys; sys.modules.update(httptools=None, uvloop=None); "
    run = "from webhook.cli.main import run; run()"
    command = [
        sys.executable, "-c", blocked + run, "serve", "--self-signed",
        "--cert-dir", str(tmp_path / "certs"), "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", str(metrics_port), "--no-cluster", "--read-timeout", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_file.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        fallback = Address(port, tmp_path / "certs" / tls.CA_FILE)
        deadline = time.monotonic() + 30
        while "serving HTTP" not in log_file.read_text() or not _accepts(port):
            assert proc.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        line = next(
            json.loads(text) for text in log_file.read_text().splitlines()
            if text.startswith("{") and "serving HTTP" in text
        )  # fmt: skip
        assert (line["http"], line["loop"], line["not_installed"]) == (
            "h11", "asyncio", ["httptools", "uvloop"],
        )  # fmt: skip
        records, answer = _tls_records_of_one_answer(
            fallback, "/validate", json.dumps(rv.review(rv.deployment())).encode()
        )
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert records == 1
        stalled = _connect(fallback)
        stalled.sendall(b"POST /validate HTTP/1.1\r\n")
        started = time.monotonic()
        assert _until_closed(stalled) == b""
        assert time.monotonic() - started < 3.0
        stalled.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_serve_http_stack_h11_keeps_the_h11_stack(tmp_path: Path) -> None:
    process = start_process(tmp_path, "--http-stack", "h11")
    try:
        with process.client() as client:
            answer = client.post("/validate", json=rv.review(rv.deployment()))
        assert answer.status_code == 200
        line = next(
            json.loads(text) for text in process.log().splitlines()
            if text.startswith("{") and "serving HTTP" in text
        )  # fmt: skip
        assert (line["http"], line["loop"]) == ("h11", "asyncio")
    finally:
        process.stop()

"""Every mistake `podgate serve` finds before serving is one line on stderr
that names the flag and what to do, exit 2, no traceback: a busy port (the
admission port or --metrics-port), a cert dir it cannot write, files it
cannot load, a bad flag."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", "--no-cluster", "--host", "127.0.0.1",
         *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_a_busy_admission_port(busy_port: int, tmp_path: Path) -> None:
    result = _serve("--self-signed", "--cert-dir", str(tmp_path), "--port", str(busy_port),
                    "--metrics-port", "0")  # fmt: skip
    _one_line(result, f":{busy_port}", "(--port)", "in use", "give --port another port")


def test_a_busy_metrics_port(busy_port: int, tmp_path: Path) -> None:
    result = _serve("--self-signed", "--cert-dir", str(tmp_path), "--port", "0",
                    "--metrics-port", str(busy_port))  # fmt: skip
    _one_line(result, f":{busy_port}", "(--metrics-port)", "give --metrics-port another port")


def test_a_cert_dir_that_cannot_be_written(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = _serve("--self-signed", "--cert-dir", str(not_a_dir / "certs"), "--port", "0",
                    "--metrics-port", "0")  # fmt: skip
    _one_line(result, "--cert-dir", str(not_a_dir / "certs"), "give a directory")


def test_certificate_files_that_cannot_be_loaded(tmp_path: Path) -> None:
    garbage = tmp_path / "tls.crt"
    garbage.write_text("not a certificate\n")
    result = _serve("--cert", str(garbage), "--key", str(tmp_path / "missing.key"),
                    "--port", "0", "--metrics-port", "0")  # fmt: skip
    _one_line(result, str(garbage), "give --cert and --key")


def test_a_client_ca_that_cannot_be_loaded(tmp_path: Path) -> None:
    result = _serve("--self-signed", "--cert-dir", str(tmp_path), "--port", "0",
                    "--metrics-port", "0", "--client-ca", str(tmp_path / "none.pem"))  # fmt: skip
    _one_line(result, "--client-ca", "PEM")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--port", "http"], "--port"),
        (["--port", "70000"], "--port"),
        (["--metrics-port", "-1"], "--metrics-port"),
        (["--workers", "0"], "--workers"),
        (["--deadline", "0"], "--deadline"),
        (["--read-timeout", "soon"], "--read-timeout"),
        (["--max-connections", "0"], "--max-connections"),
        (["--client-cn", "kube-apiserver"], "--client-ca"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_a_bad_flag(flags: list[str], named: str, tmp_path: Path) -> None:
    result = _serve("--self-signed", "--cert-dir", str(tmp_path), *flags)
    _one_line(result, named, "--help" if named != "--client-ca" else "--client-ca")


def test_a_busy_metrics_port_of_the_audit_watch(busy_port: int) -> None:
    # what `podgate audit --watch` runs once it has a cluster; the port is
    # taken before anything reads the cluster, so no cluster is needed here
    script = (
        "import argparse, sys\n"
        "from policies.config import load_config\n"
        "from webhook.audit.watch import run_watch\n"
        f"args = argparse.Namespace(log_level='info', metrics_port={busy_port})\n"
        "sys.exit(run_watch(args, load_config(None), None))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    _one_line(result, "podgate audit", f":{busy_port}", "(--metrics-port)")

"""When podgate is down, slow, or rotating its certificate: the API server's view.

These tests stop, pause and re-certify the session's podgate; each one puts
it back as it found it, so they can run in any order with the others.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography import x509

from e2e.conftest import Podgate, apply, bad_pod, eventually, good_pod, helm_upgrade, kubectl
from webhook.server import tls


@pytest.fixture
def restore(installed: Podgate, namespace: str) -> Iterator[Podgate]:
    """Hands podgate to the test, then brings it back: running, registered, answering."""
    yield installed
    if installed.process is not None and installed.process.poll() is None:
        installed.resume()
    else:
        installed.start()
    helm_upgrade(installed)
    eventually(
        lambda: apply(good_pod("probe", namespace), "--dry-run=server").returncode == 0,
        timeout=30,
    )


def test_podgate_down_fail_refuses_and_ignore_admits(restore: Podgate, namespace: str) -> None:
    restore.stop()
    refused = apply(good_pod("while-down", namespace))
    assert refused.returncode != 0
    assert 'failed calling webhook "validate.podgate.dev"' in refused.stderr, refused.stderr
    helm_upgrade(restore, validating={"failurePolicy": "Ignore"})
    created = eventually(
        lambda: "pod/while-down created" in apply(good_pod("while-down", namespace)).stdout,
        timeout=30,
    )
    assert created
    stored = kubectl(
        "get",
        "pod",
        "while-down",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.containers[0].securityContext}",
    )
    # only what the manifest had: podgate's runAsNonRoot was never added
    assert stored.stdout == '{"runAsUser":10001}', "Ignore admitted it without podgate's defaults"


def test_slow_podgate_hits_the_timeout(restore: Podgate, namespace: str) -> None:
    restore.pause()
    started = time.monotonic()
    proc = apply(bad_pod("slow", namespace))
    elapsed = time.monotonic() - started
    restore.resume()
    assert proc.returncode != 0
    assert 'failed calling webhook "validate.podgate.dev"' in proc.stderr, proc.stderr
    assert "deadline exceeded" in proc.stderr or "timeout" in proc.stderr.lower()
    # mutating (Ignore, 3 s) then validating (Fail, 5 s): the API server waited for both
    assert 5 <= elapsed < 20, elapsed


def test_certificate_rotation_fails_no_request(restore: Podgate, namespace: str) -> None:
    old_ca = (restore.cert_dir / tls.CA_FILE).read_bytes()
    new_ca, new_ca_key = tls.make_ca("podgate-e2e-rotated")
    cert, key = tls.make_serving_cert(new_ca, new_ca_key, ["localhost", "127.0.0.1"])
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def keep_applying() -> None:
        nonlocal answered
        while not stop.is_set():
            proc = apply(good_pod("rotating", namespace), "--dry-run=server")
            answered += 1
            if proc.returncode != 0:
                failures.append(proc.stderr)

    worker = threading.Thread(target=keep_applying)
    worker.start()
    try:
        time.sleep(1)
        # 1. trust both CAs, 2. serve the new certificate, 3. trust only the new CA
        both = base64.b64encode(old_ca + new_ca).decode()
        helm_upgrade(restore, caBundle=both)
        time.sleep(2)
        tls.write_atomic(restore.cert_dir / tls.KEY_FILE, key, mode=0o600)
        tls.write_atomic(restore.cert_dir / tls.CERT_FILE, cert)
        eventually(lambda: served_issuer(restore) == "podgate-e2e-rotated", timeout=20)
        helm_upgrade(restore, caBundle=base64.b64encode(new_ca).decode())
        time.sleep(3)
    finally:
        stop.set()
        worker.join()
    assert answered >= 5
    assert failures == []
    # put the session's own certificate back (restore re-registers its CA)
    (restore.cert_dir / tls.CERT_FILE).unlink()
    restore.stop()


def served_issuer(server: Podgate) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only reading which certificate is served
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    issuer = x509.load_der_x509_certificate(der).issuer
    return str(issuer.rfc4514_string()).removeprefix("CN=")

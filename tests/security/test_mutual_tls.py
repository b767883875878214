"""`serve --client-ca`: a caller without a client certificate signed by that
CA is refused before HTTP, so a forged review makes no Event and spends no
budget; `/policies` is behind the same check. With `--client-cn`, the
certificate must also name an allowed client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import Server, start_server, tls_context
from tests.integration.reviews import container, pod, review
from tests.webhook.fakes import wait_for
from webhook.server import tls

FORGED = review(pod("forged", "shop", container("web", resources={})), user="someone-else")


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of callers, a certificate it issued to the API server and one to
    someone else, and a certificate of another CA."""
    root = tmp_path_factory.mktemp("callers")
    ca, ca_key = tls.make_ca("callers-ca")
    (root / "ca.crt").write_bytes(ca)
    for name in ("kube-apiserver", "someone"):
        cert, key = tls.make_client_cert(ca, ca_key, name)
        (root / f"{name}.crt").write_bytes(cert)
        (root / f"{name}.key").write_bytes(key)
    other, other_key = tls.make_ca("other-ca")
    cert, key = tls.make_client_cert(other, other_key, "kube-apiserver")
    (root / "stranger.crt").write_bytes(cert)
    (root / "stranger.key").write_bytes(key)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, callers: Path) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("mtls"),
        client_ca=str(callers / "ca.crt"),
        client_names=frozenset({"kube-apiserver"}),
    )
    yield srv
    srv.stop()


def _client(server: Server, callers: Path, name: str | None) -> httpx.Client:
    context = tls_context(server.ca_file)
    if name is not None:
        context.load_cert_chain(callers / f"{name}.crt", callers / f"{name}.key")
    return httpx.Client(base_url=f"https://localhost:{server.port}", verify=context, timeout=5)


def _refused(server: Server, callers: Path, name: str | None, path: str) -> bool:
    with _client(server, callers, name) as client:
        try:
            client.post(path, json=FORGED) if path != "/policies" else client.get(path)
        except httpx.TransportError:
            return True
    return False


def test_the_api_server_s_certificate_is_answered(server: Server, callers: Path) -> None:
    with _client(server, callers, "kube-apiserver") as client:
        answer = client.post("/validate", json=FORGED)
        assert answer.status_code == 200
        assert answer.json()["response"]["allowed"] is False
        assert client.get("/policies").status_code == 200


@pytest.mark.parametrize("path", ["/validate", "/mutate", "/policies"])
def test_a_caller_without_a_certificate_is_refused(
    server: Server, callers: Path, path: str
) -> None:
    assert _refused(server, callers, None, path)


def test_a_certificate_of_another_ca_is_refused(server: Server, callers: Path) -> None:
    assert _refused(server, callers, "stranger", "/validate")


def test_a_certificate_that_names_no_allowed_client_is_refused(
    server: Server, callers: Path
) -> None:
    assert _refused(server, callers, "someone", "/validate")
    wait_for(lambda: "names no allowed client" in server.log_path.read_text(), timeout=5)


def test_no_forged_review_is_evaluated(server: Server, callers: Path) -> None:
    forged = review(pod("forged", "shop", container("web", resources={})), user="someone-else")
    for name in (None, "stranger", "someone"):
        with _client(server, callers, name) as client, pytest.raises(httpx.TransportError):
            client.post("/validate", json=forged)
    with _client(server, callers, "kube-apiserver") as client:
        assert client.get("/policies").status_code == 200  # the log is written by now
    uids = {line.get("uid") for line in server.log_lines()}
    assert forged["request"]["uid"] not in uids

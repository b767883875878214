"""Things that change under a running server: the cluster cache, the config,
the certificate files."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.integration import reviews as rv
from tests.integration.harness import (
    BASE_CONFIG,
    Server,
    cluster,
    metric,
    sink,
    start_server,
    tls_context,
)
from tests.webhook.fakes import namespace, network_policy, wait_for
from webhook.server import tls

UNLABELLED = rv.deployment("api", "shop")  # compliant, but no NetworkPolicy selects app=api


def test_cache_not_synced_readyz_false_and_network_policy_capped_to_warn(tmp_path: Path) -> None:
    fake = cluster([namespace("shop")], [network_policy("shop", "web", {"app": "web"})])
    netpols = fake.network_policies
    netpols.list_gate.clear()  # the NetworkPolicy list hangs: never synced
    srv = start_server(tmp_path, cluster=fake, sink=sink(), wait_ready=False)
    try:
        time.sleep(0.6)  # a few heartbeats
        ready = srv.side_get("/readyz")
        assert ready.status_code == 503
        assert "not ready" in ready.text
        assert srv.side_get("/healthz").status_code == 200
        resp = srv.review("/validate", rv.review(UNLABELLED))
        # require-network-policy is configured to deny, but never on unsynced data
        assert resp["allowed"] is True
        assert any(w.startswith("require-network-policy:") for w in resp["warnings"])
        text = srv.metrics()
        assert metric(text, "podgate_cluster_cache_synced", resource="networkpolicies") == 0
        assert srv.client.get("/policies").json()["cluster_state"] == "unsynced"

        netpols.list_gate.set()
        wait_for(lambda: srv.side_get("/readyz").status_code == 200)
        denied = srv.review("/validate", rv.review(UNLABELLED))
        assert denied["allowed"] is False
        assert "require-network-policy" in denied["status"]["message"]
        # a NetworkPolicy arriving through the watch is used at once
        netpols.push("ADDED", network_policy("shop", "api", {"app": "api"}))
        wait_for(lambda: srv.review("/validate", rv.review(UNLABELLED))["allowed"] is True)
    finally:
        srv.stop()


def test_namespace_label_change_arrives_through_the_watch(tmp_path: Path) -> None:
    fake = cluster([namespace("shop")], [network_policy("shop", "all", None)])
    nss = fake.namespaces
    srv = start_server(tmp_path, cluster=fake, sink=sink())
    try:
        bad = rv.deployment("web", "shop", rv.container(resources={}))
        assert srv.review("/validate", rv.review(bad))["allowed"] is False
        nss.push("MODIFIED", namespace("shop", **{"podgate.dev/mode": "audit"}))
        wait_for(lambda: srv.review("/validate", rv.review(bad))["allowed"] is True)
    finally:
        srv.stop()


def test_config_reload_valid_then_invalid(tmp_path: Path) -> None:
    srv = start_server(tmp_path, sink=sink())
    try:
        bad = rv.deployment("web", "shop", rv.container(resources={}))
        assert srv.review("/validate", rv.review(bad))["allowed"] is False
        before = srv.metrics()

        srv.config_path.write_text(
            BASE_CONFIG.replace("enforcement: enforce", "enforcement: audit")
        )
        wait_for(lambda: srv.client.get("/policies").json()["enforcement"] == "audit")
        resp = srv.review("/validate", rv.review(bad))
        assert resp["allowed"] is True
        assert any(
            w.startswith("[audit mode, would be denied] require-resources")
            for w in resp["warnings"]
        )

        srv.config_path.write_text("enforcement: sometimes\npolicies: {no-such-policy: {}}\n")
        wait_for(
            lambda: (
                metric(srv.metrics(), "podgate_config_reloads_total", result="failure")
                > metric(before, "podgate_config_reloads_total", result="failure")
            )
        )
        # the previous (valid) config stays in force
        assert srv.client.get("/policies").json()["enforcement"] == "audit"
        assert srv.review("/validate", rv.review(bad))["allowed"] is True
        assert metric(srv.metrics(), "podgate_config_reloads_total", result="success") == (
            metric(before, "podgate_config_reloads_total", result="success") + 1
        )
    finally:
        srv.stop()


def _served_serial(srv: Server) -> int:
    ctx = tls_context(srv.ca_file)
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
        return x509.load_der_x509_certificate(der).serial_number


def test_tls_1_2_minimum(server: Server) -> None:
    client = tls_context(server.ca_file)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        assert conn.version() == "TLSv1.2"


def test_certificate_rotation_under_load_fails_no_request(tmp_path: Path) -> None:
    srv = start_server(tmp_path, sink=sink())
    try:
        first = _served_serial(srv)
        failures: list[str] = []
        done = 0
        stop = threading.Event()

        def load(fresh_connections: bool) -> None:
            nonlocal done
            ctx = tls_context(srv.ca_file)
            client = httpx.Client(base_url=f"https://localhost:{srv.port}", verify=ctx, timeout=5)
            body = rv.review(rv.deployment())
            try:
                while not stop.is_set():
                    headers = {"Connection": "close"} if fresh_connections else {}
                    try:
                        resp = client.post("/validate", json=body, headers=headers)
                        if (
                            resp.status_code != 200
                            or resp.json()["response"]["allowed"] is not True
                        ):
                            failures.append(f"{resp.status_code} {resp.text[:200]}")
                        done += 1
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
            finally:
                client.close()

        threads = [threading.Thread(target=load, args=(fresh,)) for fresh in (True, True, False)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        ca = (srv.cert_dir / tls.CA_FILE).read_bytes()
        ca_key = (srv.cert_dir / tls.CA_KEY_FILE).read_bytes()
        for _ in range(3):  # several rotations, files rewritten while handshakes happen
            cert, key = tls.make_serving_cert(ca, ca_key, ["localhost"])
            tls.write_atomic(srv.cert_dir / tls.KEY_FILE, key, 0o600)
            time.sleep(0.05)  # a window where key and certificate do not match
            tls.write_atomic(srv.cert_dir / tls.CERT_FILE, cert)
            time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join(10)
        assert not failures, failures[:5]
        assert done > 20
        latest = x509.load_pem_x509_certificate(cert).serial_number
        wait_for(lambda: _served_serial(srv) == latest)
        assert latest != first
        reloads = [
            line for line in srv.log_lines() if line["msg"] == "serving certificate reloaded"
        ]
        assert len(reloads) >= 3
        expiry = metric(srv.metrics(), "podgate_certificate_expiry_timestamp_seconds")
        not_after = x509.load_pem_x509_certificate(cert).not_valid_after_utc
        assert abs(expiry - not_after.timestamp()) < 1
        assert not_after > dt.datetime.now(dt.UTC)
    finally:
        srv.stop()

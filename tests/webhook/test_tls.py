"""Certificate generation and the reloading TLS context."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from webhook.server import tls


def test_self_signed_bundle_has_the_service_names(tmp_path: Path) -> None:
    names = tls.service_names("podgate", "ops")
    bundle = tls.ensure_self_signed(tmp_path, names)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "podgate", "podgate.ops", "podgate.ops.svc", "podgate.ops.svc.cluster.local", "localhost",
    }  # fmt: skip
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)


def test_restart_keeps_the_ca_and_the_cert(tmp_path: Path) -> None:
    first = tls.ensure_self_signed(tmp_path, ["localhost"])
    again = tls.ensure_self_signed(tmp_path, ["localhost"])
    assert again == first
    wider = tls.ensure_self_signed(tmp_path, ["localhost", "podgate.ops.svc"])
    assert wider.ca_cert == first.ca_cert  # the registered caBundle stays valid
    assert wider.cert != first.cert


def test_reloader_switches_only_to_a_matching_pair(tmp_path: Path) -> None:
    bundle = tls.ensure_self_signed(tmp_path, ["localhost"])
    reloader = tls.ReloadingTLS(tmp_path / "tls.crt", tmp_path / "tls.key", check_interval=0)
    assert reloader.maybe_reload() is False  # unchanged
    cert, key = tls.make_serving_cert(bundle.ca_cert, bundle.ca_key, ["localhost"])
    tls.write_atomic(tmp_path / "tls.crt", cert)  # the key is still the old one
    assert reloader.maybe_reload() is False
    assert reloader.reloads == 0
    tls.write_atomic(tmp_path / "tls.key", key, 0o600)
    assert reloader.maybe_reload() is True
    assert reloader.reloads == 1
    (tmp_path / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage")
    assert reloader.maybe_reload() is False  # a broken file: the old certificate stays


def test_extra_sans_are_in_the_self_signed_certificate(tmp_path: Path) -> None:
    names, ips = tls.split_sans(["podgate.example", "172.18.0.1"])
    assert (names, ips) == (["podgate.example"], ["172.18.0.1"])
    first = tls.ensure_self_signed(tmp_path, ["localhost", *names], (*tls.LOOPBACK_IPS, *ips))
    assert "172.18.0.1" in tls.ip_addresses_of(first.cert)
    assert "podgate.example" in tls.dns_names_of(first.cert)
    again = tls.ensure_self_signed(tmp_path, ["localhost", *names], (*tls.LOOPBACK_IPS, *ips))
    assert again.cert == first.cert, "a certificate with every SAN is reused"
    wider = tls.ensure_self_signed(tmp_path, ["localhost"], (*tls.LOOPBACK_IPS, "10.1.2.3"))
    assert "10.1.2.3" in tls.ip_addresses_of(wider.cert), "a missing IP means a new certificate"

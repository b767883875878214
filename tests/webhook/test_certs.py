"""Managed certificates, with fakes for the Secret and webhook configurations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.webhook.fakes import FakeSecrets, FakeWebhooks, wait_for
from webhook.server import certs, tls
from webhook.server.certs import CA_KEY, CertManager, remove_webhooks

NAMES = tls.service_names("podgate", "podgate-system")


def _manager(secrets: FakeSecrets, hooks: FakeWebhooks, cert_dir: Path) -> CertManager:
    return CertManager(
        secrets, hooks, namespace="podgate-system", secret_name="podgate-tls",
        dns_names=NAMES, cert_dir=cert_dir, validating="podgate", mutating="podgate",
    )  # fmt: skip


def _aged_cert(
    ca_pem: bytes, ca_key_pem: bytes, *, used: float, ca: bool = False
) -> tuple[bytes, bytes]:
    """A certificate of a 90-day life of which `used` has passed."""
    issuer = x509.load_pem_x509_certificate(ca_pem)
    issuer_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=90 * used)
    builder = (
        x509.CertificateBuilder()
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=90))
    )
    if ca:
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old-ca")])
        builder = (
            builder.subject_name(name)
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        )
        signer = key
    else:
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, NAMES[0])])
        builder = (
            builder.subject_name(name)
            .issuer_name(issuer.subject)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), critical=False
            )
        )
        signer = issuer_key
    cert = builder.sign(signer, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key_pem


def test_creates_the_secret_writes_files_and_patches_every_webhook(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks({("validating", "podgate"): 2,
                                                  ("mutating", "podgate"): 1})  # fmt: skip
    bundle = _manager(secrets, hooks, tmp_path).sync()
    stored = secrets.get("podgate-system", "podgate-tls")
    assert stored is not None
    assert stored.data["tls.crt"] == bundle.cert
    assert (tmp_path / "tls.crt").read_bytes() == bundle.cert
    assert (tmp_path / "ca.crt").read_bytes() == bundle.ca_bundle
    assert hooks.bundles[("validating", "podgate")] == [bundle.ca_bundle] * 2
    assert hooks.bundles[("mutating", "podgate")] == [bundle.ca_bundle]
    assert set(NAMES) <= tls.dns_names_of(bundle.cert)
    assert "podgate.podgate-system.svc" in NAMES


def test_a_second_replica_reuses_the_secret(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks()
    first = _manager(secrets, hooks, tmp_path / "a").sync()
    second = _manager(secrets, hooks, tmp_path / "b").sync()
    assert first == second
    assert secrets.writes == 1


def test_racing_creators_agree(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks()
    other = _manager(FakeSecrets(), hooks, tmp_path / "other")
    theirs = other.ensure_secret()
    # another replica creates the Secret between our read and our create
    secrets.before_write = lambda: secrets.put(
        "podgate-system", "podgate-tls",
        {"ca.crt": theirs.ca_bundle, CA_KEY: theirs.ca_key,
         "tls.crt": theirs.cert, "tls.key": theirs.key},
    )  # fmt: skip
    ours = _manager(secrets, hooks, tmp_path / "ours").sync()
    assert ours.cert == theirs.cert


def test_rotates_the_serving_cert_when_a_third_of_its_life_is_left(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks()
    manager = _manager(secrets, hooks, tmp_path)
    original = manager.sync()
    young, young_key = _aged_cert(original.ca_cert, original.ca_key, used=0.5)
    secrets.put("podgate-system", "podgate-tls", {"ca.crt": original.ca_bundle,
                CA_KEY: original.ca_key, "tls.crt": young, "tls.key": young_key})  # fmt: skip
    assert manager.sync().cert == young  # half its life left: kept
    old, old_key = _aged_cert(original.ca_cert, original.ca_key, used=0.7)
    secrets.put("podgate-system", "podgate-tls", {"ca.crt": original.ca_bundle,
                CA_KEY: original.ca_key, "tls.crt": old, "tls.key": old_key})  # fmt: skip
    rotated = manager.sync()
    assert rotated.cert != old
    assert rotated.ca_bundle == original.ca_bundle  # same CA: caBundle unchanged
    assert tls.remaining_fraction(rotated.cert) > 0.99
    assert (tmp_path / "tls.crt").read_bytes() == rotated.cert


def test_a_lowered_lifetime_renews_a_certificate_that_outlives_it(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks()
    long_lived = _manager(secrets, hooks, tmp_path).sync()  # 365 days
    manager = CertManager(
        secrets, hooks, namespace="podgate-system", secret_name="podgate-tls",
        dns_names=NAMES, cert_dir=tmp_path, validating="podgate", mutating="podgate",
        days=30,
    )  # fmt: skip
    renewed = manager.sync()
    assert renewed.cert != long_lived.cert
    assert renewed.ca_bundle == long_lived.ca_bundle
    end = x509.load_pem_x509_certificate(renewed.cert).not_valid_after_utc
    assert end - dt.datetime.now(dt.UTC) < dt.timedelta(days=30, minutes=1)
    assert manager.sync().cert == renewed.cert  # and kept from then on


def test_concurrent_rotation_uses_the_winner(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks()
    manager = _manager(secrets, hooks, tmp_path)
    original = manager.sync()
    old, old_key = _aged_cert(original.ca_cert, original.ca_key, used=0.8)
    data = {"ca.crt": original.ca_bundle, CA_KEY: original.ca_key}
    secrets.put("podgate-system", "podgate-tls", {**data, "tls.crt": old, "tls.key": old_key})
    winner = tls.make_serving_cert(original.ca_cert, original.ca_key, NAMES)
    secrets.before_write = lambda: secrets.put(
        "podgate-system", "podgate-tls", {**data, "tls.crt": winner[0], "tls.key": winner[1]}
    )
    assert manager.sync().cert == winner[0]


def test_ca_rotation_keeps_trusting_the_old_ca(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks({("validating", "podgate"): 1})
    manager = _manager(secrets, hooks, tmp_path)
    # an old CA with 20% of its life left, and a cert it issued
    seed_ca, seed_key = tls.make_ca()
    old_ca, old_ca_key = _aged_cert(seed_ca, seed_key, used=0.8, ca=True)
    cert, key = tls.make_serving_cert(old_ca, old_ca_key, NAMES)
    data = {"ca.crt": old_ca, CA_KEY: old_ca_key, "tls.crt": cert, "tls.key": key}
    secrets.put("podgate-system", "podgate-tls", data)
    rotated = manager.sync()
    assert rotated.ca_cert != old_ca
    assert rotated.ca_bundle.startswith(rotated.ca_cert)
    assert old_ca in rotated.ca_bundle  # both CAs trusted during the switch
    assert hooks.bundles[("validating", "podgate")] == [rotated.ca_bundle]


def test_conflicting_and_missing_webhook_configurations(tmp_path: Path) -> None:
    secrets, hooks = FakeSecrets(), FakeWebhooks({("validating", "podgate"): 1})
    hooks.conflicts = 2
    _manager(secrets, hooks, tmp_path).sync()  # mutating one missing: logged, not fatal
    assert ("validating", "podgate") in hooks.bundles


def test_a_missing_configuration_is_patched_within_seconds_of_appearing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enabled by a later `helm upgrade`, the mutating configuration would
    otherwise wait the whole sync interval (600 s) for its caBundle."""
    monkeypatch.setattr(certs, "MISSING_RETRY_S", 0.05)
    secrets, hooks = FakeSecrets(), FakeWebhooks({("validating", "podgate"): 1})
    manager = _manager(secrets, hooks, tmp_path)
    manager.sync()
    assert manager.missing == ["mutating/podgate"]
    manager.start(interval_s=600)
    try:
        hooks.configs[("mutating", "podgate")] = 1
        wait_for(lambda: ("mutating", "podgate") in hooks.bundles, timeout=2)
        wait_for(lambda: not manager.missing, timeout=2)
    finally:
        manager.stop()


def test_remove_webhooks_ignores_missing() -> None:
    hooks = FakeWebhooks({("validating", "podgate"): 1})
    done = remove_webhooks(hooks, "podgate", "podgate")
    assert done == ["validatingwebhookconfiguration/podgate deleted",
                    "mutatingwebhookconfiguration/podgate not found"]  # fmt: skip
    assert hooks.deleted == [("validating", "podgate")]

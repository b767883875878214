"""Managed certificates (`--manage-certs`): a CA and serving certificate kept in
a Secret, written to the cert dir and registered as the webhooks' caBundle.

Several replicas run this at once. They agree through the Secret: whoever
creates it first wins (the others get a Conflict and read it), and a rotation
replaces it with the resourceVersion it read, so two replicas rotating at the
same moment do not both win. The serving certificate is rotated when less than
a third of its life is left. When the CA itself is rotated, the bundle keeps
the previous CA until it expires, so certificates of either CA are trusted
while the replicas pick up the new one.

The kube client sits behind `SecretStore` and `WebhookConfigs` (the cluster
part's), so tests use fakes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography import x509

from webhook.cluster.client import Conflict, NotFound
from webhook.cluster.secrets import SecretStore
from webhook.cluster.webhook_configs import WebhookConfigs
from webhook.server import tls

log = logging.getLogger("podgate.certs")

CA_KEY = "ca.key"
KEYS = (tls.CA_FILE, CA_KEY, tls.CERT_FILE, tls.KEY_FILE)
ROTATE_BELOW = 1 / 3


def _bundle_from(data: Mapping[str, bytes]) -> tls.Bundle:
    missing = [k for k in KEYS if not data.get(k)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    ca_pems = _split_pems(data[tls.CA_FILE])
    return tls.Bundle(
        ca_cert=ca_pems[0],
        ca_key=data[CA_KEY],
        cert=data[tls.CERT_FILE],
        key=data[tls.KEY_FILE],
        ca_bundle=data[tls.CA_FILE],
    )


def _split_pems(blob: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each as its own PEM."""
    marker = b"-----END CERTIFICATE-----"
    return [part.strip() + b"\n" + marker + b"\n" for part in blob.split(marker) if part.strip()]


def _data_of(bundle: tls.Bundle) -> dict[str, bytes]:
    return {
        tls.CA_FILE: bundle.ca_bundle,
        CA_KEY: bundle.ca_key,
        tls.CERT_FILE: bundle.cert,
        tls.KEY_FILE: bundle.key,
    }


def _still_valid(pem: bytes, now: dt.datetime) -> bool:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc > now


MISSING_RETRY_S = 5.0  # how soon a sync is retried while a configuration is missing


class CertManager:
    def __init__(
        self,
        secrets: SecretStore,
        webhooks: WebhookConfigs | None,
        *,
        namespace: str,
        secret_name: str,
        dns_names: Sequence[str],
        cert_dir: Path,
        validating: str | None = None,
        mutating: str | None = None,
        ca_days: float = tls.CA_DAYS,
        days: float = tls.SERVING_DAYS,
    ) -> None:
        self.secrets, self.webhooks = secrets, webhooks
        self.namespace, self.secret_name = namespace, secret_name
        self.dns_names = list(dns_names)
        self.cert_dir = cert_dir
        self.validating, self.mutating = validating, mutating
        self.ca_days, self.days = ca_days, days
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.missing: list[str] = []  # configurations the last sync did not find

    # --- deciding -----------------------------------------------------------------
    def _needs(self, bundle: tls.Bundle, now: dt.datetime) -> str | None:
        """What must be renewed: `ca`, `cert` or None."""
        if tls.remaining_fraction(bundle.ca_cert, now) < ROTATE_BELOW:
            return "ca"
        if (
            tls.remaining_fraction(bundle.cert, now) < ROTATE_BELOW
            or self._outlives_its_lifetime(bundle.cert, now)
            or not set(self.dns_names) <= tls.dns_names_of(bundle.cert)
            or not tls._issued_by(bundle.cert, bundle.ca_cert)
        ):
            return "cert"
        return None

    def _outlives_its_lifetime(self, cert_pem: bytes, now: dt.datetime) -> bool:
        """Valid for longer than a new one would be: the lifetime was lowered,
        and it takes effect now rather than when the old one runs out."""
        end = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
        return end - now > dt.timedelta(days=self.days) * 1.01 + dt.timedelta(minutes=1)

    def _renew(self, old: tls.Bundle | None, what: str) -> tls.Bundle:
        now = dt.datetime.now(dt.UTC)
        if old is None or what == "ca":
            ca_cert, ca_key = tls.make_ca(days=self.ca_days)
            # keep trusting the previous CA while replicas still serve its certs
            previous = (
                [p for p in _split_pems(old.ca_bundle) if _still_valid(p, now)] if old else []
            )
            ca_bundle = b"".join([ca_cert, *previous[:1]])
        else:
            ca_cert, ca_key, ca_bundle = old.ca_cert, old.ca_key, old.ca_bundle
        cert, key = tls.make_serving_cert(ca_cert, ca_key, self.dns_names, days=self.days)
        return tls.Bundle(ca_cert, ca_key, cert, key, ca_bundle)

    def ensure_secret(self, attempts: int = 5) -> tls.Bundle:
        """The bundle in the Secret, created or rotated as needed."""
        for _ in range(attempts):
            current = self.secrets.get(self.namespace, self.secret_name)
            now = dt.datetime.now(dt.UTC)
            if current is None:
                bundle = self._renew(None, "ca")
                try:
                    self.secrets.create(self.namespace, self.secret_name, _data_of(bundle))
                except Conflict:
                    continue  # another replica created it first: use theirs
                log.info("created the certificate Secret", extra={"fields": self._where()})
                return bundle
            try:
                old: tls.Bundle | None = _bundle_from(current.data)
                assert old is not None
                what = self._needs(old, now)
            except (ValueError, AssertionError) as exc:
                log.warning(
                    "certificate Secret unusable; replacing it",
                    extra={"fields": {**self._where(), "error": str(exc)}},
                )
                old, what = None, "ca"
            if what is None:
                assert old is not None
                return old
            bundle = self._renew(old, what)
            try:
                self.secrets.replace(
                    self.namespace, self.secret_name, _data_of(bundle), current.resource_version
                )
            except (Conflict, NotFound):
                continue  # someone else rotated it: read again
            log.info(
                f"rotated the {what} in the certificate Secret", extra={"fields": self._where()}
            )
            return bundle
        raise RuntimeError(
            f"could not agree on the certificate Secret {self.namespace}/{self.secret_name} "
            f"after {attempts} attempts"
        )

    def _where(self) -> dict[str, str]:
        return {"secret": f"{self.namespace}/{self.secret_name}"}

    # --- applying -----------------------------------------------------------------
    def write_files(self, bundle: tls.Bundle) -> bool:
        """Write the files the server reads, only when they differ (the reloader keys on mtime)."""
        try:
            same = (self.cert_dir / tls.CERT_FILE).read_bytes() == bundle.cert and (
                self.cert_dir / tls.CA_FILE
            ).read_bytes() == bundle.ca_bundle
        except OSError:
            same = False
        if same:
            return False
        tls.write_bundle(self.cert_dir, bundle)
        return True

    def patch_webhooks(self, bundle: tls.Bundle) -> None:
        """Patch the caBundle of both configurations; `missing` says which were not there."""
        self.missing = []
        if self.webhooks is None:
            return
        for kind, name in (("validating", self.validating), ("mutating", self.mutating)):
            if not name:
                continue
            for _ in range(5):
                try:
                    if self.webhooks.set_ca_bundle(kind, name, bundle.ca_bundle):
                        log.info("patched caBundle", extra={"fields": {"kind": kind, "name": name}})
                    break
                except Conflict:
                    continue
                except NotFound:
                    # the chart may create the configuration after the pods start
                    log.warning(
                        "webhook configuration not found (yet)",
                        extra={"fields": {"kind": kind, "name": name}},
                    )
                    self.missing.append(f"{kind}/{name}")
                    break

    def sync(self) -> tls.Bundle:
        bundle = self.ensure_secret()
        self.write_files(bundle)
        self.patch_webhooks(bundle)
        return bundle

    def start(self, interval_s: float) -> None:
        """Re-check periodically: picks up rotations by other replicas, re-patches caBundle.

        While a configuration is missing (created after the pods, or enabled
        by a later `helm upgrade`), every few seconds: its webhook has no
        caBundle until then, and with `failurePolicy: Fail` that refuses
        every request it matches."""

        def loop() -> None:
            while not self._stop.wait(
                min(interval_s, MISSING_RETRY_S) if self.missing else interval_s
            ):
                try:
                    self.sync()
                except Exception:
                    log.exception("certificate sync failed; will retry")

        self._thread = threading.Thread(target=loop, name="podgate-certs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def remove_webhooks(
    webhooks: WebhookConfigs, validating: str | None, mutating: str | None
) -> list[str]:
    """Delete the named configurations (the chart's pre-delete hook); missing ones are fine."""
    done = []
    for kind, name in (("validating", validating), ("mutating", mutating)):
        if name:
            existed = webhooks.delete(kind, name)
            done.append(
                f"{kind}webhookconfiguration/{name} {'deleted' if existed else 'not found'}"
            )
    return done

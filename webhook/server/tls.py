"""Certificates: a self-signed CA and serving certificate, and a TLS context
whose certificate is reloaded from disk when the files change.

The API server only talks to webhooks over TLS and checks the serving
certificate against the `caBundle` of the webhook configuration, so the CA is
written to `ca.crt` for registration. Keys are ECDSA P-256: small, and a
cheaper handshake than RSA's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.telemetry import metrics

log = logging.getLogger("podgate.tls")

CA_DAYS = 3650
SERVING_DAYS = 365
CA_FILE, CERT_FILE, KEY_FILE, CA_KEY_FILE = "ca.crt", "tls.crt", "tls.key", "ca.key"
PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Bundle:
    """PEM bytes of a CA and a serving certificate signed by it.

    `ca_bundle` is what clients trust: the CA, plus the previous CA while a
    CA rotation is in progress so certificates of either are accepted.
    """

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    ca_bundle: bytes


LOOPBACK_IPS = ("127.0.0.1", "::1")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def service_names(service: str | None, namespace: str | None) -> list[str]:
    """The DNS names the API server may use for the Service, and localhost."""
    names: list[str] = []
    if service:
        names.append(service)
        if namespace:
            base = f"{service}.{namespace}"
            names += [base, f"{base}.svc", f"{base}.svc.cluster.local"]
    return [*names, "localhost"]


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only ECDSA keys are supported for the managed CA")
    return key


def make_ca(common_name: str = "podgate-ca", days: float = CA_DAYS) -> tuple[bytes, bytes]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = LOOPBACK_IPS,
    days: float = SERVING_DAYS,
) -> tuple[bytes, bytes]:
    return _issue(
        ca_cert_pem, ca_key_pem, dns_names, ip_addresses, days, ExtendedKeyUsageOID.SERVER_AUTH
    )


def make_client_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, name: str, days: float = SERVING_DAYS
) -> tuple[bytes, bytes]:
    """A certificate for a caller of `serve --client-ca` (the API server), named
    `name` as its common name and DNS name (what `--client-cn` matches)."""
    return _issue(ca_cert_pem, ca_key_pem, [name], (), days, ExtendedKeyUsageOID.CLIENT_AUTH)


def _issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    days: float,
    usage: x509.ObjectIdentifier,
) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def remaining_fraction(cert_pem: bytes, now: dt.datetime | None = None) -> float:
    """How much of the certificate's lifetime is left, 0 when expired."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    now = now or _now()
    total = (end - start).total_seconds()
    return max(0.0, (end - now).total_seconds() / total) if total > 0 else 0.0


def _san(cert_pem: bytes) -> x509.SubjectAlternativeName | None:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def dns_names_of(cert_pem: bytes) -> set[str]:
    san = _san(cert_pem)
    return set(san.get_values_for_type(x509.DNSName)) if san else set()


def ip_addresses_of(cert_pem: bytes) -> set[str]:
    san = _san(cert_pem)
    return {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} if san else set()


def split_sans(sans: Sequence[str]) -> tuple[list[str], list[str]]:
    """`--san` values as (DNS names, IP addresses)."""
    names: list[str] = []
    ips: list[str] = []
    for san in sans:
        try:
            ips.append(str(ipaddress.ip_address(san)))
        except ValueError:
            names.append(san)
    return names, ips


def expiry_timestamp(cert_pem: bytes) -> float:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bundle(cert_dir: Path, bundle: Bundle, *, with_ca_key: bool = False) -> None:
    """ca.crt, tls.key and tls.crt (and ca.key for a self-signed CA kept across restarts).

    The key is written before the certificate: the reloader only switches once
    the pair matches, and a matching pair appears only with the last rename.
    """
    if with_ca_key:
        write_atomic(cert_dir / CA_KEY_FILE, bundle.ca_key, 0o600)
    write_atomic(cert_dir / CA_FILE, bundle.ca_bundle)
    write_atomic(cert_dir / KEY_FILE, bundle.key, 0o600)
    write_atomic(cert_dir / CERT_FILE, bundle.cert)


def ensure_self_signed(
    cert_dir: Path, dns_names: Sequence[str], ip_addresses: Sequence[str] = LOOPBACK_IPS
) -> Bundle:
    """Reuse the CA in cert_dir if there is one (so the registered caBundle stays
    valid across restarts); issue a new serving certificate when it is missing,
    has less than a third of its life left, or lacks one of the names."""
    ca_path, ca_key_path = cert_dir / CA_FILE, cert_dir / CA_KEY_FILE
    cert_path, key_path = cert_dir / CERT_FILE, cert_dir / KEY_FILE
    try:
        ca_cert, ca_key = ca_path.read_bytes(), ca_key_path.read_bytes()
        if remaining_fraction(ca_cert) < 1 / 3:
            raise ValueError("CA near expiry")
        _load_key(ca_key)
    except (OSError, ValueError):
        ca_cert, ca_key = make_ca()
    try:
        cert, key = cert_path.read_bytes(), key_path.read_bytes()
        usable = (
            remaining_fraction(cert) >= 1 / 3
            and set(dns_names) <= dns_names_of(cert)
            and set(ip_addresses) <= ip_addresses_of(cert)
            and _issued_by(cert, ca_cert)
        )
    except (OSError, ValueError):
        usable = False
    if not usable:
        cert, key = make_serving_cert(ca_cert, ca_key, dns_names, ip_addresses)
    bundle = Bundle(ca_cert, ca_key, cert, key, ca_cert)
    write_bundle(cert_dir, bundle, with_ca_key=True)
    return bundle


def _issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):
        return False
    return True


def server_context(
    cert_file: Path, key_file: Path, client_ca: Path | None = None
) -> ssl.SSLContext:
    """With `client_ca`, a caller must present a certificate it signed (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _signature(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        st = p.stat()  # follows symlinks: a Secret volume swaps a `..data` link
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class ReloadingTLS:
    """A server SSLContext whose certificate follows the files on disk.

    Each new handshake passes through an SNI callback on the listening
    context; at most once per `check_interval` it compares the files' inode,
    size and mtime with those last loaded and, when they changed, builds a new
    context. The handshake is then switched to the newest context. Open
    connections keep the certificate they were set up with, so nothing in
    flight fails; a half-written pair (key and certificate not matching) is
    refused and the old certificate stays until the next check.
    """

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        client_ca: Path | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file, self.key_file, self.client_ca = cert_file, key_file, client_ca
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = _signature(*self._files)
        self._current = server_context(cert_file, key_file, client_ca)
        self._next_check = clock() + check_interval
        self.reloads = 0
        # The listening context only carries the callback; every handshake is
        # moved to `_current`, which holds the certificate (and the client CA:
        # OpenSSL verifies against the store of the context switched to, with
        # the verify mode of the one the handshake began on, so both ask).
        self.context = server_context(cert_file, key_file, client_ca)
        self.context.sni_callback = self._on_hello
        self._record_expiry("serving certificate loaded")

    @property
    def _files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file, *([self.client_ca] if self.client_ca else []))

    def _record_expiry(self, message: str) -> None:
        """Export and log when the certificate in use expires: each pod says
        which one it serves, which the runbook's certificate checks read."""
        fields = {"cert": str(self.cert_file)}
        with contextlib.suppress(OSError, ValueError):
            expiry = expiry_timestamp(self.cert_file.read_bytes())
            metrics.CERT_EXPIRY.set(expiry)
            fields["not_after"] = dt.datetime.fromtimestamp(expiry, dt.UTC).isoformat()
        log.info(message, extra={"fields": fields})

    def maybe_reload(self, force: bool = False) -> bool:
        """Load the files if they changed; True when a new certificate is in use."""
        now = self._clock()
        if not force and now < self._next_check:
            return False
        with self._lock:
            self._next_check = now + self.check_interval
            try:
                signature = _signature(*self._files)
                if signature == self._signature:
                    return False
                context = server_context(self.cert_file, self.key_file, self.client_ca)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning(
                    "certificate files changed but cannot be loaded yet; keeping the old one",
                    extra={"fields": {"cert": str(self.cert_file), "error": str(exc)}},
                )
                return False
            self._current, self._signature = context, signature
            self.reloads += 1
        self._record_expiry("serving certificate reloaded")
        return True

    def _on_hello(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        self.maybe_reload()
        sock.context = self._current

"""LAN TLS: a small local certificate authority and a server certificate (the `cryptography` package).

Browsers give a page the microphone only in a secure context (HTTPS or localhost), so voice chat
from a phone on the LAN needs HTTPS. `ensure_tls` keeps, under the state directory:

    tls/ca.crt        0644  the CA certificate: the one file a person copies to a phone or laptop
    tls/ca.key        0600  the CA's private key (never leaves this directory)
    tls/server.crt    0600  the server certificate (names + addresses), signed by the CA
    tls/server.key    0600  its private key

It creates what is missing and issues the server certificate again when the names or addresses
changed, when it is not signed by the current CA, when it is within the planner's renewal window
(plan/kamal.py, which plans the renewal: this is its executor, and what a deploy's project
needs) or when `renew` asks. Nothing here prints or returns key material except `server_pem()`,
whose result goes only into Kamal's secrets file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler.errors import PermanentError
from reconciler.kamal.render import tls_hosts
from reconciler.plan.kamal import CA_RENEW_BEFORE, RENEW_BEFORE

__all__ = ["TlsError", "TlsState", "ensure_tls", "tls_hosts", "trust_instructions"]

SERVER_DAYS = 397  # the longest validity Apple platforms accept for a server certificate
CA_DAYS = 3650
CA_NAME = "reconciler LAN CA"


class TlsError(PermanentError):
    """The TLS material under the state directory could not be made or read."""


@dataclass(frozen=True)
class TlsState:
    directory: Path
    not_after: datetime
    renewed: bool  # the server certificate was (re)issued by this call
    ca_created: bool  # a new CA: devices must trust it again
    names: tuple[str, ...]
    addresses: tuple[str, ...]

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_path(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "server.key"

    def server_pem(self) -> tuple[str, str]:
        """(certificate chain PEM, private key PEM) for kamal-proxy. Secret: never log it."""
        chain = self.cert_path.read_text(encoding="ascii") + self.ca_path.read_text(encoding="ascii")
        return chain, self.key_path.read_text(encoding="ascii")

    def fingerprint(self) -> str:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return cert.fingerprint(hashes.SHA256()).hex()[:16]


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC key")
    return key


def _new_ca(directory: Path, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_NAME} {now:%Y-%m-%d}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reconciler"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory / "ca.key", _key_pem(key), 0o600)
    _write(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _new_server(
    directory: Path,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    addresses: Sequence[str],
    now: datetime,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    common = names[0] if names else addresses[0]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "server.key", _key_pem(key), 0o600)
    _write(directory / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o600)
    return cert


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    public = ca.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or cert.signature_hash_algorithm is None:
        return False
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return cert.issuer == ca.subject


def covers(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) of the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def ensure_tls(
    directory: Path,
    names: Sequence[str],
    addresses: Sequence[str],
    *,
    now: datetime | None = None,
    renew_before: timedelta = RENEW_BEFORE,
    renew: bool = False,
    new_ca: bool = False,
) -> TlsState:
    """Make or renew the CA and the server certificate; idempotent when nothing is due.
    `renew` / `new_ca`: issue them again now (a planned renewal)."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    ca_created = renewed = False
    try:
        ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        ca_key = _load_key(directory / "ca.key")
        if new_ca or ca.not_valid_after_utc - now < renew_before + (CA_RENEW_BEFORE - RENEW_BEFORE):
            raise ValueError("CA near expiry")
    except (OSError, ValueError):
        ca, ca_key = _new_ca(directory, now)
        ca_created = True
    wanted = (set(names), {str(ipaddress.ip_address(a)) for a in addresses})
    try:
        cert = x509.load_pem_x509_certificate((directory / "server.crt").read_bytes())
        _load_key(directory / "server.key")
        due = (
            ca_created
            or renew
            or cert.not_valid_after_utc - now < renew_before
            or cert.not_valid_before_utc > now
            or covers(cert) != wanted
            or not signed_by(cert, ca)
        )
    except (OSError, ValueError):
        due = True
    if due:
        if not names and not addresses:
            raise TlsError("a TLS certificate needs at least one name or address")
        cert = _new_server(directory, ca, ca_key, names, addresses, now)
        renewed = True
    return TlsState(
        directory=directory,
        not_after=cert.not_valid_after_utc,
        renewed=renewed,
        ca_created=ca_created,
        names=tuple(names),
        addresses=tuple(addresses),
    )


def trust_instructions(ca_path: Path, url: str | None = None) -> str:
    """What to tell a person: where the CA file is and how to trust it on their devices
    (desired_state/OPENWEBUI.md says the same, step by step)."""
    where = f"; then open {url}" if url else ""
    return (
        f"LAN HTTPS uses a local certificate authority: copy {ca_path} to each phone or laptop and "
        "trust it once — iPhone/iPad: open it, Settings › General › VPN & Device Management › "
        "Install, then Settings › General › About › Certificate Trust Settings › enable it; "
        "Android: Settings › Security › Encryption & credentials › Install a certificate › CA "
        "certificate; macOS: Keychain Access, 'Always Trust'; Windows: certutil -addstore Root "
        "ca.crt; Linux Chrome/Chromium: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n "
        f"'reconciler LAN CA' -i ca.crt; Firefox: its own Certificates › Authorities › Import{where}"
    )

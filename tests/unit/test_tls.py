"""LAN TLS: the CA and server certificate (pure file I/O under a temp dir)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from reconciler.openwebui.tls import covers, ensure_tls, signed_by, trust_instructions

NAMES = ("gpu-box.lan", "chat.lan")
ADDRESSES = ("127.0.0.1", "192.168.1.50")


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_cert_verifies_against_the_ca_for_every_name_and_address(tmp_path: Path) -> None:
    state = ensure_tls(tmp_path / "tls", NAMES, ADDRESSES)
    assert state.renewed and state.ca_created
    ca, cert = _load(state.ca_path), _load(state.cert_path)
    assert signed_by(cert, ca)
    cert.verify_directly_issued_by(ca)
    names, addresses = covers(cert)
    assert names == set(NAMES) and addresses == set(ADDRESSES)
    for key in ("ca.key", "server.key", "server.crt"):
        assert stat.S_IMODE((tmp_path / "tls" / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_idempotent_then_renewed_near_expiry(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path, NAMES, ADDRESSES)
    again = ensure_tls(tmp_path, NAMES, ADDRESSES)
    assert not again.renewed and again.fingerprint() == first.fingerprint()
    later = datetime.now(UTC) + timedelta(days=380)  # < 30 days left on a 397-day certificate
    renewed = ensure_tls(tmp_path, NAMES, ADDRESSES, now=later)
    assert renewed.renewed and not renewed.ca_created
    assert renewed.not_after > first.not_after
    assert signed_by(_load(renewed.cert_path), _load(renewed.ca_path))


def test_new_names_reissue_the_certificate(tmp_path: Path) -> None:
    ensure_tls(tmp_path, NAMES, ADDRESSES)
    state = ensure_tls(tmp_path, (*NAMES, "new.lan"), ADDRESSES)
    assert state.renewed and "new.lan" in covers(_load(state.cert_path))[0]


def test_no_key_material_in_messages(tmp_path: Path) -> None:
    state = ensure_tls(tmp_path, NAMES, ADDRESSES)
    text = trust_instructions(state.ca_path) + repr(state)
    key = (tmp_path / "server.key").read_text()
    assert "PRIVATE KEY" not in text and key.splitlines()[1] not in text
    assert str(state.ca_path) in text


def test_the_observer_says_when_the_certificate_is_due(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from reconciler.openwebui.tls import SERVER_DAYS, ensure_tls, renewal_due

    issued = datetime(2026, 1, 1, tzinfo=UTC)
    assert renewal_due(tmp_path / "tls", issued) is None  # nothing made yet: the deploy makes it
    ensure_tls(tmp_path / "tls", ["gpu-box.lan"], ["192.168.1.50"], now=issued)
    assert renewal_due(tmp_path / "tls", issued + timedelta(days=10)) is None
    due = renewal_due(tmp_path / "tls", issued + timedelta(days=SERVER_DAYS - 10))
    assert (due is not None and "in 9 days" in due) or "in 10 days" in str(due)

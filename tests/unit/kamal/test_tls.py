"""LAN TLS: the CA and server certificate (pure file I/O under a temp dir)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from reconciler.kamal.tls import covers, ensure_tls, signed_by, trust_instructions

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


def test_the_observer_reads_the_certificate_and_the_planner_says_when_it_is_due(tmp_path: Path) -> None:
    from reconciler.kamal.tls import SERVER_DAYS
    from reconciler.observe.kamal import read_certificate
    from reconciler.plan.kamal import renewal_due

    issued = datetime(2026, 1, 1, tzinfo=UTC)
    assert read_certificate(tmp_path / "tls") is None  # nothing made yet: the deploy makes it
    ensure_tls(tmp_path / "tls", ["gpu-box.lan"], ["192.168.1.50"], now=issued)
    cert = read_certificate(tmp_path / "tls")
    assert cert is not None and cert.ca_not_after is not None
    assert renewal_due(cert, issued + timedelta(days=10)) is None
    due = renewal_due(cert, issued + timedelta(days=SERVER_DAYS - 10))
    assert due is not None and not due.new_ca
    assert "in 9 days" in due.reason or "in 10 days" in due.reason


def test_a_planned_renewal_issues_a_new_certificate_now(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path, NAMES, ADDRESSES).fingerprint()  # of the file as it is now
    renewed = ensure_tls(tmp_path, NAMES, ADDRESSES, renew=True)
    assert renewed.renewed and not renewed.ca_created and renewed.fingerprint() != first
    both = ensure_tls(tmp_path, NAMES, ADDRESSES, renew=True, new_ca=True)
    assert both.renewed and both.ca_created

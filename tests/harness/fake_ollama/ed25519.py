"""Ed25519 (RFC 8032) in pure Python, and the key files and signatures Ollama makes with it.

Ollama signs registry token requests with the ed25519 key it keeps in ``~/.ollama/id_ed25519``
(auth/auth.go ``Sign``: ``<base64 SSH public key blob>:<base64 signature>``), generated at the
first ``ollama serve``. The fake does the same with this module (stdlib only, as it runs in the
container); the harness token server verifies with it. Slow (tens of ms a signature) and not
constant-time: for tests only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(s: int, p: Point) -> Point:
    q: Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: Point = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(p: Point) -> bytes:
    zinv = pow(p[2], _P - 2, _P)
    x, y = p[0] * zinv % _P, p[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return x, y, 1, x * y % _P


def _equal(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    a, _ = _expand(seed)
    return _compress(_mul(a, _G))


def sign(seed: bytes, message: bytes) -> bytes:
    a, prefix = _expand(seed)
    pub = _compress(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % _L
    big_r = _compress(_mul(r, _G))
    k = int.from_bytes(hashlib.sha512(big_r + pub + message).digest(), "little") % _L
    s = (r + k * a) % _L
    return big_r + int.to_bytes(s, 32, "little")


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(k, a)))


# -- SSH wire format (RFC 4253 §6.6, RFC 8709) and Ollama's signature header ------------------
def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ssh_public_blob(public: bytes) -> bytes:
    return _ssh_string(b"ssh-ed25519") + _ssh_string(public)


def authorized_key(public: bytes) -> str:
    """``ssh-ed25519 AAAA…`` as ``ssh.MarshalAuthorizedKey`` writes it (``id_ed25519.pub``)."""
    return "ssh-ed25519 " + base64.b64encode(ssh_public_blob(public)).decode()


def public_from_blob(blob_b64: str) -> bytes | None:
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except ValueError:
        return None
    if not blob.startswith(_ssh_string(b"ssh-ed25519")):
        return None
    rest = blob[len(_ssh_string(b"ssh-ed25519")) :]
    if len(rest) != 36 or struct.unpack(">I", rest[:4])[0] != 32:
        return None
    return rest[4:]


def ollama_signature(seed: bytes, data: bytes) -> str:
    """auth/auth.go ``Sign``: ``<base64 public key blob>:<base64 raw signature>``."""
    blob = base64.b64encode(ssh_public_blob(public_key(seed))).decode()
    return f"{blob}:{base64.b64encode(sign(seed, data)).decode()}"


def verify_ollama_signature(header: str, data: bytes) -> bytes | None:
    """The public key that made ``header`` over ``data``, or None when it does not verify."""
    blob, sep, sig_b64 = header.partition(":")
    public = public_from_blob(blob) if sep else None
    if public is None:
        return None
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError:
        return None
    return public if verify(public, data, sig) else None


def openssh_private_key(seed: bytes) -> str:
    """An unencrypted ``-----BEGIN OPENSSH PRIVATE KEY-----`` file (PROTOCOL.key), what
    ``ollama serve`` writes to ``~/.ollama/id_ed25519`` on first start."""
    public = public_key(seed)
    check = os.urandom(4)
    section = check + check + _ssh_string(b"ssh-ed25519") + _ssh_string(public)
    section += _ssh_string(seed + public) + _ssh_string(b"")
    section += bytes(range(1, 1 + (-len(section) % 8)))
    body = b"openssh-key-v1\0" + _ssh_string(b"none") + _ssh_string(b"none") + _ssh_string(b"")
    body += struct.pack(">I", 1) + _ssh_string(ssh_public_blob(public)) + _ssh_string(section)
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    armor = "OPENSSH PRIVATE KEY-----"
    return f"-----BEGIN {armor}\n" + "\n".join(lines) + f"\n-----END {armor}\n"


def seed_from_openssh(text: str) -> bytes | None:
    """The 32-byte seed of a key written by ``openssh_private_key`` (unencrypted ed25519)."""
    inner = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        body = base64.b64decode(inner)
    except ValueError:
        return None
    marker = _ssh_string(b"ssh-ed25519")
    at = body.rfind(marker)
    if at < 0:
        return None
    pos = at + len(marker)
    (n,) = struct.unpack(">I", body[pos : pos + 4])
    pos += 4 + n
    (n,) = struct.unpack(">I", body[pos : pos + 4])
    private = body[pos + 4 : pos + 4 + n]
    return private[:32] if n == 64 else None

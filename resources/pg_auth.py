"""PostgreSQL passwords set without their plain text: a SCRAM-SHA-256 verifier computed here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default for scram-sha-256


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL stores for `password` (RFC 5802/7677): `ALTER ROLE ... PASSWORD`
    given it sets the password while the plain text never reaches the server or its log."""
    salt = secrets.token_bytes(16)
    salted = password_fingerprint(password, salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    salt64, stored64, server64 = (
        base64.b64encode(v).decode() for v in (salt, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


def password_fingerprint(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """PBKDF2-SHA-256 of `password` with `salt`: what tells a password changed without keeping
    it, as costly to reverse as the SCRAM verifier PostgreSQL itself stores."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)

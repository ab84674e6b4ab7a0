"""Bearer tokens: issued and revoked by the warehouse owner, stored as SHA-256 only.

A token is random (256 bits), so a plain hash is the right store: nothing to brute-force, and
PostgreSQL can compare it itself (`marts.dashboard_scope()`), which is what row-level security
keys on. The token is shown once, when issued.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from resources.errors import ConfigError
from resources.warehouse import WarehouseResource

PREFIX = "twd_"  # recognisable in a leaked file or a secret scanner's rules


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str
    label: str
    targetologist: str | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def known_targetologists(warehouse: WarehouseResource) -> list[str]:
    rows = warehouse.fetch_all(
        "SELECT name FROM stg_supabase_traffic.targetologists WHERE _deleted_at IS NULL"
        " UNION SELECT targetologist FROM marts.targetologist_daily ORDER BY 1"
    )
    return [r[0] for r in rows]


def issue_token(
    warehouse: WarehouseResource,
    *,
    targetologist: str | None,
    label: str | None = None,
    expires_in: timedelta | None = None,
) -> IssuedToken:
    """A new token for one targetologist, or with `targetologist=None` an admin token."""
    if targetologist is not None and targetologist not in known_targetologists(warehouse):
        known = ", ".join(known_targetologists(warehouse)) or "none loaded yet"
        raise ConfigError("api", f"api: no targetologist named {targetologist!r} (known: {known}).")
    token = PREFIX + secrets.token_urlsafe(32)
    label = label or (f"targetologist {targetologist}" if targetologist else "admin")
    expires_at = datetime.now().astimezone() + expires_in if expires_in else None
    rows = warehouse.fetch_all(
        "INSERT INTO ops.api_tokens (token_sha256, label, targetologist, expires_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (digest(token), label, targetologist, expires_at),
    )
    return IssuedToken(rows[0][0], token, label, targetologist)


def revoke_token(warehouse: WarehouseResource, token_id: int) -> bool:
    rows = warehouse.fetch_all(
        "UPDATE ops.api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
        " RETURNING id",
        (token_id,),
    )
    return bool(rows)


def list_tokens(warehouse: WarehouseResource) -> list[tuple]:
    """(id, label, scope, created_at, expires_at, revoked_at) of every token, never the token."""
    return warehouse.fetch_all(
        "SELECT id, label, coalesce(targetologist, 'admin'), created_at, expires_at, revoked_at"
        " FROM ops.api_tokens ORDER BY id"
    )

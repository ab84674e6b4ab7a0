"""SQL lives in `sql/`, one file per table; this is the one helper that loads it by name."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import psycopg

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
FUNCTIONS_DIR = SQL_DIR / "functions"  # business SQL, re-applied when changed


@cache
def load_sql(name: str) -> str:
    """`load_sql("core/leads")` → the text of `sql/core/leads.sql`."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL model named {name!r} (looked for {path})")
    return path.read_text()


def migrations() -> list[tuple[str, str]]:
    """(version, sql) of every DDL file, in order; the version is the file's stem."""
    return [(p.stem, p.read_text()) for p in sorted((SQL_DIR / "ddl").glob("*.sql"))]


def model_names(schema: str) -> tuple[str, ...]:
    """The tables of `schema` that a model file builds: `("core.ad_spend_daily", ...)`."""
    return tuple(f"{schema}.{p.stem}" for p in sorted((SQL_DIR / schema).glob("*.sql")))


def definitions() -> list[tuple[str, str]]:
    """(name, sql) of every business SQL file (functions), in name order."""
    return [(p.stem, p.read_text()) for p in sorted(FUNCTIONS_DIR.glob("*.sql"))]


def apply_definitions(conn: psycopg.Connection) -> list[str]:
    """Apply every file of `sql/functions` that is new or changed since it was last applied
    (ops.sql_definitions holds each one's checksum); return the names applied now. Unlike a
    migration, such a file is meant to be edited: each is idempotent (CREATE OR REPLACE)."""
    rows = conn.execute("SELECT name, checksum FROM ops.sql_definitions").fetchall()
    done: dict[str, str] = dict(rows)
    applied = []
    for name, text in definitions():
        checksum = hashlib.sha256(text.encode()).hexdigest()
        if done.get(name) == checksum:
            continue
        conn.execute(text.encode())
        conn.execute(
            "INSERT INTO ops.sql_definitions (name, checksum) VALUES (%s, %s) ON CONFLICT (name)"
            " DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
            (name, checksum),
        )
        applied.append(name)
    return applied

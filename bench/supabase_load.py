"""Supabase's bench data: generated `landing_leads` rows (the same for every load and its
baseline) and a source database holding them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from resources import embedded_pg
from resources.canonical import CANONICAL_TABLES as SUPABASE_TABLES
from sandbox import supabase_db

LANDING = next(t for t in SUPABASE_TABLES if t.name == "landing_leads")
COLUMNS = (
    "id", "created_at", "updated_at", "name", "phone", "email", "funnel", "utm_source",
    "utm_medium", "utm_campaign", "utm_content", "utm_term", "amocrm_lead_id",
    "synced_to_amocrm", "synced_at",
)  # fmt: skip


def landing_rows(count: int) -> Iterator[tuple]:
    """Generated on the fly, so the process's peak memory is the load paths' own."""
    rng = random.Random(1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, count + 1):
        ts = start + timedelta(seconds=i * 7)
        synced = rng.random() < 0.9
        yield (
            (i, ts, ts, f"Lead {i} «тест»", f"+7700{i:07d}", f"lead{i}@example.kz",
             rng.choice(("express", "flagship")), "facebook", "cpc", f"aida_express_{i % 40}",
             str(i % 500), None, 30_000_000 + i if synced else None, synced,
             ts + timedelta(minutes=3) if synced else None)
        )  # fmt: skip


def fresh_db(server: str, name: str) -> str:
    embedded_pg.drop_database(server, name)
    embedded_pg.create_database(server, name)
    return embedded_pg.database_uri(server, name)


def source_database(server: str, name: str, count: int) -> str:
    """A Supabase Main database of its own holding `count` generated landing leads."""
    dsn = fresh_db(server, name)
    supabase_db.create_schema(dsn, "main")
    copy_into = sql.SQL("COPY landing_leads ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    with psycopg.connect(dsn) as conn, conn.cursor().copy(copy_into) as copy:
        for row in landing_rows(count):
            copy.write_row(row)
    return dsn

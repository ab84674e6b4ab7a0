"""Supabase: a 200k-row `landing_leads` full load through REST (the PostgREST simulator, 1000-row
pages) and through the direct-database path, both into the warehouse with the real loader;
baseline: a bare COPY of the same rows as tuples (the local limit of the load step alone)."""

from __future__ import annotations

import os
import random
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from assets.supabase import sync_table
from contract.canonical import CANONICAL_TABLES as SUPABASE_TABLES
from resources import embedded_pg
from resources.supabase import supabase_resource
from resources.warehouse import WarehouseResource, engine_for
from sandbox import supabase_db
from sandbox.postgrest import create_postgrest_app, make_jwt
from sandbox.server import SimServer

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


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(server: str, count: int = 200_000) -> list[list]:
    source_dsn = fresh_db(server, "bench_supabase_main")
    supabase_db.create_schema(source_dsn, "main")
    copy_into = sql.SQL("COPY landing_leads ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    with psycopg.connect(source_dsn) as conn:
        with conn.cursor().copy(copy_into) as copy:
            for row in landing_rows(count):
                copy.write_row(row)
    results = []
    t0 = time.perf_counter()
    baseline_dsn = fresh_db(server, "bench_baseline")
    with psycopg.connect(baseline_dsn) as conn:
        supabase_db.create_schema(baseline_dsn, "main")
        with conn.cursor().copy(copy_into) as copy:
            for row in landing_rows(count):
                copy.write_row(row)
    baseline = time.perf_counter() - t0
    results.append(["COPY tuples (baseline)", count, baseline, count / baseline, 1.0, rss_mib()])

    secret = "bench-secret"
    key = make_jwt(secret, "service_role", int(time.time()) + 3600)
    app = create_postgrest_app(source_dsn, project="main", jwt_secret=secret, api_keys=[key])
    with SimServer("bench_supabase_main", app) as sim:
        for label, env in (
            ("REST (PostgREST, 1000-row pages)", {"SUPABASE_MAIN_URL": sim.url}),
            ("direct DB (server-side cursor)", {"SUPABASE_MAIN_DB_URL": source_dsn}),
        ):
            os.environ.pop("SUPABASE_MAIN_DB_URL", None)
            os.environ.update({"SUPABASE_MAIN_SERVICE_ROLE_KEY": key, **env})
            url = fresh_db(server, "bench_warehouse")
            warehouse = WarehouseResource(url=url)
            warehouse.apply_ddl()
            t0 = time.perf_counter()
            resource_ = supabase_resource("Main", "SUPABASE_MAIN")
            counts = sync_table(warehouse, resource_, LANDING)
            seconds = time.perf_counter() - t0
            assert counts["rows_inserted"] == count, counts
            results.append([label, count, seconds, count / seconds, seconds / baseline, rss_mib()])
            engine_for(url).dispose()
    return results


HEADERS = ["Supabase landing_leads full load", "rows", "seconds", "rows/s", "× baseline time",
           "peak RSS MiB"]  # fmt: skip

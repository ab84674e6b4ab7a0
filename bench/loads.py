"""The loaders' figures, one function each, for `make bench`'s table: every load runs in a
process of its own (its peak RSS is the load's alone) against the PostgREST simulator in another
process, as a real project would be; the baseline is a bare COPY of the same rows in the same run.

`python -m bench.loads [ROWS]` prints them all (200k rows during development).
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import SPAWN
from bench.supabase_load import COLUMNS, LANDING, fresh_db, landing_rows
from contract.config import DEFAULT_FILE
from resources import embedded_pg
from sandbox import supabase_db

PGDATA = Path(__file__).resolve().parent.parent / ".local" / "bench-pgdata"
SECRET = "bench-secret"
SOURCE_DB, WAREHOUSE_DB, BASELINE_DB = "bench_source", "bench_warehouse", "bench_baseline"


def _copy_into(dsn: str, count: int) -> float:
    """Seconds of a bare COPY of `count` generated landing rows into `dsn`'s landing_leads."""
    statement = sql.SQL("COPY landing_leads ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor().copy(statement) as copy:
        for row in landing_rows(count):
            copy.write_row(row)
    return time.perf_counter() - started


def _source(server: str, count: int) -> str:
    dsn = fresh_db(server, SOURCE_DB)
    supabase_db.create_schema(dsn, "main")
    _copy_into(dsn, count)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE landing_leads")
    return dsn


def measure_copy(server: str, count: int) -> float:
    """The baseline: seconds of a bare COPY of the rows as tuples into an empty table."""
    dsn = fresh_db(server, BASELINE_DB)
    supabase_db.create_schema(dsn, "main")
    return _copy_into(dsn, count)


def _serve(dsn: str, port: int, key: str) -> None:
    import uvicorn

    from sandbox.postgrest import create_postgrest_app

    app = create_postgrest_app(dsn, project="bench", jwt_secret=SECRET, api_keys=[key])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def postgrest_process(dsn: str) -> Iterator[tuple[str, str]]:
    """(url, service-role key) of the simulator serving `dsn`, in a process of its own."""
    from sandbox.postgrest import make_jwt
    from sandbox.server import free_port

    key = make_jwt(SECRET, "service_role", int(time.time()) + 3600)
    port = free_port()
    process = SPAWN.Process(target=_serve, args=(dsn, port, key), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(url, process)
        yield url, key
    finally:
        process.terminate()
        process.join(10)


def _wait_listening(url: str, process: Any) -> None:
    import httpx

    deadline = time.monotonic() + 120  # a spawned interpreter's imports, on a busy machine
    while time.monotonic() < deadline and process.is_alive():
        try:
            httpx.get(url + "/rest/v1/landing_leads", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the PostgREST simulator did not start")


def _load_once(warehouse_url: str, env: dict[str, str]) -> dict[str, Any]:
    """In a child process: one sync of landing_leads; its counts, seconds and peak RSS."""
    from assets.supabase import sync_table
    from resources.supabase import supabase_resource
    from resources.warehouse import WarehouseResource

    for name in ("SUPABASE_MAIN_URL", "SUPABASE_MAIN_DB_URL", "SUPABASE_MAIN_SERVICE_ROLE_KEY"):
        os.environ.pop(name, None)
    os.environ.update(env)
    warehouse = WarehouseResource(url=warehouse_url)
    started = time.perf_counter()
    counts = sync_table(warehouse, supabase_resource("Main", "SUPABASE_MAIN"), LANDING)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**counts, "seconds": seconds, "peak_rss_mib": rss}


def _in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        return pool.submit(function, *args).result()


def _empty_warehouse(server: str) -> str:
    from resources.warehouse import WarehouseResource

    url = fresh_db(server, WAREHOUSE_DB)
    WarehouseResource(url=url).apply_ddl()
    return url


def _figures(load: dict[str, Any], copy_seconds: float) -> dict[str, Any]:
    keys = ("rows_read", "rows_inserted", "rows_updated", "rows_deleted", "requests", "pages",
            "peak_rss_mib", "scan")  # fmt: skip
    return {
        "seconds": round(load["seconds"], 3),
        "rows_per_second": round(load["rows_read"] / load["seconds"]),
        "copy_seconds": round(copy_seconds, 3),
        "x_copy": round(load["seconds"] / copy_seconds, 2),
        **{k: load[k] for k in keys},
    }


def measure_supabase_rest(server: str, count: int) -> dict[str, Any]:
    """A full REST load of `count` landing_leads into an empty warehouse, against a COPY."""
    source = _source(server, count)
    copy_seconds = measure_copy(server, count)
    warehouse = _empty_warehouse(server)
    with postgrest_process(source) as (url, key):
        env = {"SUPABASE_MAIN_URL": url, "SUPABASE_MAIN_SERVICE_ROLE_KEY": key}
        load = _in_child(_load_once, warehouse, env)
    assert load["rows_inserted"] == count, load
    return _figures(load, copy_seconds)


def measure_supabase_direct(server: str, count: int) -> dict[str, Any]:
    """The direct-database path's full load, against a COPY of the same rows."""
    source = _source(server, count)
    copy_seconds = measure_copy(server, count)
    warehouse = _empty_warehouse(server)
    env = {"SUPABASE_MAIN_DB_URL": source, "SUPABASE_MAIN_SERVICE_ROLE_KEY": "unused"}
    load = _in_child(_load_once, warehouse, env)
    assert load["rows_inserted"] == count, load
    return _figures(load, copy_seconds)


def _change_source(
    dsn: str, count: int, fraction: float, *, delete: bool, seed: int, clustered: bool = False
) -> int:
    """Delete (or touch) `fraction` of the rows, at random or as one run of ids; how many."""
    how_many = int(count * fraction)
    rng = random.Random(seed)
    if clustered:
        first = rng.randrange(1, count - how_many + 2)
        ids = list(range(first, first + how_many))
    else:
        ids = rng.sample(range(1, count + 1), how_many)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if delete:
            conn.execute("DELETE FROM landing_leads WHERE id = ANY(%s)", (ids,))
        else:
            conn.execute(
                "UPDATE landing_leads SET utm_term = 'changed', updated_at = now()"
                " WHERE id = ANY(%s)",
                (ids,),
            )
    return len(ids)


def measure_supabase_incremental(
    server: str,
    count: int,
    changed: float = 0.01,
    deleted: float = 0.0,
    clustered: bool = False,
    cursor_index: bool = True,
) -> dict[str, Any]:
    """After a full load: `changed` of the rows updated and `deleted` of them deleted (at random
    or as one run of ids), then the hourly load. Its time, deletion detection apart, against
    the full load's; deletion detection's own requests against a scan of every id (a page of
    ids per 1000 rows, then the empty page that ends it). With `cursor_index` the source table
    has the index a table read by its change column should have (README, Supabase); without
    it every page of the hourly read is a sequential scan of the whole source table."""
    source = _source(server, count)
    if cursor_index:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("CREATE INDEX ON landing_leads (updated_at, id)")
    warehouse = _empty_warehouse(server)
    with postgrest_process(source) as (url, key):
        env = {"SUPABASE_MAIN_URL": url, "SUPABASE_MAIN_SERVICE_ROLE_KEY": key}
        full = _in_child(_load_once, warehouse, env)
        touched = _change_source(source, count, changed, delete=False, seed=2)
        gone = _change_source(source, count, deleted, delete=True, seed=3, clustered=clustered)
        hourly = _in_child(_load_once, warehouse, env)
    assert hourly["rows_deleted"] == gone, hourly
    id_scan_requests = -(-count // 1000) + 1
    load_seconds = hourly["seconds"] - hourly["deletion_seconds"]
    return {
        "full_seconds": round(full["seconds"], 3),
        "hourly_seconds": round(hourly["seconds"], 3),
        "load_seconds": round(load_seconds, 3),
        "x_full": round(load_seconds / full["seconds"], 4),
        "changed": touched,
        "deleted": gone,
        "clustered": clustered,
        "rows_updated": hourly["rows_updated"],
        "rows_deleted": hourly["rows_deleted"],
        "hourly_requests": hourly["requests"],
        "deletion_requests": hourly["deletion_requests"],
        "deletion_method": hourly["deletion_method"],
        "deletion_seconds": hourly["deletion_seconds"],
        "id_scan_requests": id_scan_requests,
        "x_id_scan_requests": round(hourly["deletion_requests"] / id_scan_requests, 3),
        "full_requests": full["requests"],
        "cursor_index": cursor_index,
    }


def _snapshot_contract() -> Path:
    """The contract with landing_leads read by the snapshot strategy (no change column): each
    load reads the whole table and marks deleted what it did not see."""
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    assert "landing_leads: {}" in text, "contract.yaml's landing_leads entry moved"
    path = PGDATA.parent / "bench-snapshot-contract.yaml"
    path.write_text(text.replace("landing_leads: {}", "landing_leads: {cursor: snapshot}"))
    return path


def measure_supabase_reread(server: str, count: int) -> dict[str, Any]:
    """The snapshot strategy's full load into an empty warehouse, then its next run with
    nothing changed at the source: the whole table read again, every row's hash found equal."""
    source = _source(server, count)
    warehouse = _empty_warehouse(server)
    with postgrest_process(source) as (url, key):
        env = {"SUPABASE_MAIN_URL": url, "SUPABASE_MAIN_SERVICE_ROLE_KEY": key,
               "CONTRACT_FILE": str(_snapshot_contract())}  # fmt: skip
        full = _in_child(_load_once, warehouse, env)
        again = _in_child(_load_once, warehouse, env)
    assert again["rows_read"] == count and again["rows_unchanged"] == count, again
    assert again["rows_deleted"] == 0, again
    return {
        "full_seconds": round(full["seconds"], 3),
        "reread_seconds": round(again["seconds"], 3),
        "x_full": round(again["seconds"] / full["seconds"], 3),
        "rows_skipped_by_hash": again.get("rows_skipped_by_hash", 0),
        "requests": again["requests"],
    }


def measure_supabase_deletions(server: str, count: int, clustered: bool) -> dict[str, Any]:
    """0.1 % of the rows deleted (and 1 % changed) before the hourly load."""
    return measure_supabase_incremental(server, count, 0.01, 0.001, clustered)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    measures: dict[str, Callable[[str, int], dict[str, Any]]] = {
        "rest": measure_supabase_rest,
        "direct": measure_supabase_direct,
        "incremental": measure_supabase_incremental,
        "incremental_no_index": lambda server, n: measure_supabase_incremental(
            server, n, cursor_index=False
        ),
        "reread": measure_supabase_reread,
        "deleted_scattered": lambda server, n: measure_supabase_deletions(server, n, False),
        "deleted_clustered": lambda server, n: measure_supabase_deletions(server, n, True),
    }
    only = sys.argv[2:] or list(measures)
    with embedded_pg.owned_server(PGDATA):
        server = embedded_pg.start(PGDATA, databases=())
        for name in only:
            print(name, measures[name](server, count), flush=True)
        embedded_pg.stop(PGDATA)


if __name__ == "__main__":
    main()

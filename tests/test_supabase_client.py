"""The Supabase client and raw assets under the vendor's failure modes, against the sandbox's
PostgREST servers: real error bodies → one clear message; transient faults retried; the 1000-row
cap, updates in the middle of a scan, hard deletes; the direct-database path gives the same rows;
one project failing leaves the other two loading; keys never reach the event log."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from assets.supabase import (
    COUNTS,
    DIGESTS,
    Deletions,
    RecordStream,
    Start,
    find_deleted,
    prepare_table,
    sync_table,
)
from resources.canonical import CANONICAL_TABLES as SUPABASE_TABLES
from resources.errors import SourceError
from resources.sql_files import load_sql
from resources.supabase import (
    BY_UPDATED_AT,
    INSTALL_KEY_DIGEST,
    KEY_DIGEST,
    KEY_DIGEST_FILE,
    SupabaseResource,
    supabase_resource,
)
from sandbox.stack import Sandbox
from tests.conftest import FAST_SANDBOX, SMALL_SANDBOX, point_env_at, run_job, step_failures

SUPABASE_TABLES_BY_NAME = {t.name: t for t in SUPABASE_TABLES}
TRAFFIC = supabase_resource("Traffic", "SUPABASE_TRAFFIC", backoff_seconds=0.01)
MAIN = supabase_resource("Main", "SUPABASE_MAIN", backoff_seconds=0.01)
KEYS = "SUPABASE_TRAFFIC_SERVICE_ROLE_KEY or SUPABASE_TRAFFIC_ANON_KEY"
INVALID_KEY = (
    f"Supabase Traffic: Invalid API key (check {KEYS}). "
    "Hint: Double check your Supabase `anon` or `service_role` API key."
)


@pytest.fixture
def sandbox_env(monkeypatch, warehouse, fresh_sandbox):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return fresh_sandbox


def first_page(resource: SupabaseResource, table: str = "all_sales_tracking") -> list[dict]:
    with resource.open() as api:
        return next(iter(api.scan(table, BY_UPDATED_AT, None)))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("garbage-key", INVALID_KEY),
        (
            "expired",
            "Supabase Traffic: JWT expired (PGRST303): the key in "
            "SUPABASE_TRAFFIC_SERVICE_ROLE_KEY has expired; issue a new one in the project's "
            "Settings → API.",
        ),
        (
            "wrong_secret",
            "Supabase Traffic: the key in SUPABASE_TRAFFIC_SERVICE_ROLE_KEY is not a valid JWT for "
            "this project (PGRST301: No suitable key or wrong key type); copy it again from the "
            "project's Settings → API.",
        ),
        (
            "not_a_jwt",
            "Supabase Traffic: the key in SUPABASE_TRAFFIC_SERVICE_ROLE_KEY is not a valid JWT for "
            "this project (PGRST301: Expected 3 parts in JWT; got 1); copy it again from the "
            "project's Settings → API.",
        ),
    ],
)
def test_given_bad_key_when_reading_then_one_clear_message_and_no_retry(
    sandbox_env, monkeypatch, key, expected
):
    value = sandbox_env.keys["traffic"].get(key, key)
    monkeypatch.setenv("SUPABASE_TRAFFIC_SERVICE_ROLE_KEY", value)
    server = sandbox_env.servers["supabase_traffic"]
    before = len(server.requests)
    with pytest.raises(SourceError) as caught:
        first_page(TRAFFIC)
    assert caught.value.message == expected
    assert not caught.value.transient
    assert len(server.requests) - before == 1
    assert value not in str(caught.value)


def test_given_missing_table_then_message_names_project_and_table(sandbox_env):
    with pytest.raises(SourceError) as caught:
        first_page(TRAFFIC, "all_sales_trackin")
    assert caught.value.message.startswith(
        "Supabase Traffic: table all_sales_trackin not found (PGRST205: Could not find the table "
        "'public.all_sales_trackin' in the schema cache). Hint: Perhaps you meant the table "
        "'public.all_sales_tracking'"
    )


@pytest.mark.parametrize(
    ("unset", "expected"),
    [
        (
            ("SUPABASE_TRAFFIC_SERVICE_ROLE_KEY", "SUPABASE_TRAFFIC_ANON_KEY"),
            "Supabase Traffic: no API key is set (set SUPABASE_TRAFFIC_SERVICE_ROLE_KEY or "
            "SUPABASE_TRAFFIC_SECRET_KEY or SUPABASE_TRAFFIC_ANON_KEY or "
            "SUPABASE_TRAFFIC_PUBLISHABLE_KEY; the service-role or secret key also lets "
            "discovery read the schema; all are in the project's Settings → API).",
        ),
        (
            ("SUPABASE_TRAFFIC_URL",),
            "Supabase Traffic: SUPABASE_TRAFFIC_URL is not set (set it to the project URL, "
            "https://<ref>.supabase.co).",
        ),
    ],
)
def test_given_missing_setting_then_message_names_the_variable(
    sandbox_env, monkeypatch, unset, expected
):
    for name in unset:
        monkeypatch.delenv(name)
    with pytest.raises(SourceError, match="^Supabase Traffic") as caught:
        first_page(TRAFFIC)
    assert caught.value.message == expected


def test_given_only_anon_key_then_it_is_used(sandbox_env, monkeypatch):
    monkeypatch.delenv("SUPABASE_TRAFFIC_SERVICE_ROLE_KEY")
    assert len(first_page(TRAFFIC)) > 0
    sent = sandbox_env.servers["supabase_traffic"].requests[-1].headers["apikey"]
    assert sent == sandbox_env.keys["traffic"]["anon"]


def test_given_503_twice_then_success_loads_everything(sandbox_env, dagster_instance, warehouse):
    server = sandbox_env.servers["supabase_traffic"]
    server.faults.add(r"/rest/v1/all_sales_tracking", status=503, body={"message": "down"}, times=2)
    result = run_job(dagster_instance, "refresh_supabase_traffic")
    assert result.success, step_failures(result)
    statuses = [r.status for r in server.requests if r.path.endswith("all_sales_tracking")]
    assert statuses[:3] == [503, 503, 206]  # then the count's one row: 206, part of the total
    expected = len(sandbox_env.world.supabase["traffic"]["all_sales_tracking"].rows)
    count = warehouse.fetch_all("SELECT count(*) FROM raw_supabase_traffic.all_sales_tracking")
    assert count[0][0] == expected


def test_given_connection_reset_mid_page_then_retried_and_rows_exact(sandbox_env):
    server = sandbox_env.servers["supabase_traffic"]
    server.faults.add(r"/rest/v1/all_sales_tracking", reset=True, times=1)
    with TRAFFIC.open() as api:
        rows = [r for page in api.scan("all_sales_tracking", BY_UPDATED_AT, None) for r in page]
        assert api.stats.retries == 1
    assert sorted(r["id"] for r in rows) == sorted(
        sandbox_env.world.supabase["traffic"]["all_sales_tracking"].rows
    )


def test_given_transient_errors_persist_then_transient_failure_message(sandbox_env):
    server = sandbox_env.servers["supabase_traffic"]
    server.faults.add(r"/rest/v1/.*", status=520, body="<html>origin error</html>", times=-1)
    with pytest.raises(SourceError) as caught:
        first_page(TRAFFIC)
    assert caught.value.transient
    assert caught.value.message.startswith(
        "Supabase Traffic: table all_sales_tracking still answers HTTP 520 after 5 attempts"
    )


def test_given_a_count_fails_then_its_own_answer_says_why_once_per_attempt(sandbox_env):
    server = sandbox_env.servers["supabase_traffic"]
    server.faults.add(r"/rest/v1/all_sales_tracking", status=503, times=-1,
                      body={"message": "Service Unavailable"})  # fmt: skip
    with TRAFFIC.open() as api, pytest.raises(SourceError) as caught:
        api.count("all_sales_tracking", BY_UPDATED_AT)
    assert caught.value.message == (
        "Supabase Traffic: table all_sales_tracking still answers HTTP 503 after 5 attempts: "
        "Service Unavailable"
    )
    assert [(r.method, r.headers.get("prefer")) for r in server.requests] == [
        ("GET", "count=exact")
    ] * TRAFFIC.max_attempts
    server.faults.clear()
    with TRAFFIC.open() as api, pytest.raises(SourceError) as caught:
        api.count("all_sales_trackin", BY_UPDATED_AT)
    assert caught.value.message.startswith(
        "Supabase Traffic: table all_sales_trackin not found (PGRST205: Could not find the table "
    )


def test_given_5000_rows_past_the_cap_then_each_loads_exactly_once(
    sandbox_env, dagster_instance, warehouse
):
    table = sandbox_env.world.supabase["main"]["prooftest_leads"]
    template = next(iter(table.rows.values()))
    for i in range(1, 5001):
        table.put({**template, "id": 900_000 + i, "updated_at": template["updated_at"]})
    sandbox_env.sync()
    result = run_job(dagster_instance, "refresh_supabase_main")
    assert result.success, step_failures(result)
    rows = warehouse.fetch_all(
        "SELECT count(*), count(DISTINCT id) FROM raw_supabase_main.prooftest_leads"
    )
    assert rows == [(len(table.rows), len(table.rows))]
    log = warehouse.fetch_all(
        "SELECT rows_in FROM ops.load_log WHERE entity = 'prooftest_leads' ORDER BY id DESC LIMIT 1"
    )
    assert log == [(len(table.rows),)]


def test_given_rows_updated_mid_scan_then_none_lost_none_duplicated(sandbox_env, warehouse):
    spec_table = next(t for t in SUPABASE_TABLES if t.name == "landing_leads")
    dsn = sandbox_env.dsn("main")
    world_rows = sandbox_env.world.supabase["main"]["landing_leads"].rows
    later = max(r["updated_at"] for r in world_rows.values()) + timedelta(hours=1)

    def pages_with_writes_between():
        with MAIN.open() as api:
            for number, page in enumerate(api.scan("landing_leads", BY_UPDATED_AT, None)):
                yield page
                if number == 0:  # move a row already read and one not yet read to the end
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute(
                            "UPDATE landing_leads SET updated_at = %s, name = 'moved'"
                            " WHERE id IN (%s, %s)",
                            (later, page[0]["id"], max(world_rows)),
                        )

    with MAIN.open() as api:
        ready = prepare_table(warehouse, api, spec_table)
    start = Start(None, "the whole table")
    stream = RecordStream(
        ready.plan,
        ready.columns,
        pages_with_writes_between(),
        start,
        datetime.now(UTC),
        lambda: datetime.now(UTC),
    )
    result = warehouse.load(ready.spec, stream, source="supabase_main", entity="landing_leads")
    stored = warehouse.fetch_all("SELECT id, name FROM raw_supabase_main.landing_leads")
    assert sorted(i for i, _ in stored) == sorted(world_rows)
    assert sum(1 for _, name in stored if name == "moved") == 2
    assert result.rows_in == len(world_rows) + 1  # the row moved after it was read, twice


def test_given_hard_deletes_in_source_then_marked_not_kept_live(
    sandbox_env, dagster_instance, warehouse
):
    assert run_job(dagster_instance, "refresh_supabase_tripwire").success
    users = sandbox_env.world.supabase["tripwire"]["tripwire_users"]
    gone = sorted(users.rows)[:3]
    for key in gone:
        users.delete(key)
    sandbox_env.sync()
    result = run_job(dagster_instance, "refresh_supabase_tripwire")
    assert result.success
    marked = warehouse.fetch_all(
        "SELECT id FROM raw_supabase_tripwire.tripwire_users WHERE _deleted_at IS NOT NULL"
        " ORDER BY id"
    )
    assert [r[0] for r in marked] == gone


def test_given_traffic_key_invalid_when_all_sources_run_then_other_two_load_and_marts_build(
    sandbox_env, dagster_instance, warehouse, monkeypatch
):
    monkeypatch.setenv("SUPABASE_TRAFFIC_SERVICE_ROLE_KEY", "leaked-secret-value")
    outcomes = {
        job: run_job(dagster_instance, job)
        for job in (
            "refresh_supabase_main",
            "refresh_supabase_tripwire",
            "refresh_supabase_traffic",
            "rebuild_models",
        )
    }
    assert {job: r.success for job, r in outcomes.items()} == {
        "refresh_supabase_main": True,
        "refresh_supabase_tripwire": True,
        "refresh_supabase_traffic": False,
        "rebuild_models": True,
    }
    failures = step_failures(outcomes["refresh_supabase_traffic"])
    assert set(failures.values()) == {INVALID_KEY}
    attempts = warehouse.fetch_all(
        "SELECT DISTINCT error FROM ops.source_attempts WHERE source = 'supabase_traffic'"
    )
    assert attempts == [(INVALID_KEY,)]
    run_id = outcomes["refresh_supabase_traffic"].run_id
    for record in dagster_instance.all_logs(run_id):
        assert "leaked-secret-value" not in str(record)


def test_given_direct_database_url_then_same_rows_as_rest(
    sandbox_env, dagster_instance, warehouse, pg_server, monkeypatch
):
    from resources import embedded_pg
    from resources.warehouse import WarehouseResource, engine_for

    assert run_job(dagster_instance, "refresh_supabase_main").success
    embedded_pg.drop_database(pg_server, "direct_copy")
    embedded_pg.create_database(pg_server, "direct_copy", template="warehouse_template")
    direct = WarehouseResource(url=embedded_pg.database_uri(pg_server, "direct_copy"))
    monkeypatch.setenv("WAREHOUSE_URL", direct.url)
    monkeypatch.setenv("SUPABASE_MAIN_DB_URL", sandbox_env.dsn("main"))
    server = sandbox_env.servers["supabase_main"]
    before = len(server.requests)
    assert run_job(dagster_instance, "refresh_supabase_main").success
    assert len(server.requests) == before  # no REST call on the direct path
    for table in [t for t in SUPABASE_TABLES if t.project == "main"]:
        columns = [
            name
            for (name,) in warehouse.fetch_all(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                " AND table_name = %s AND column_name <> '_loaded_at' ORDER BY ordinal_position",
                (table.raw_schema, table.name),
            )
        ]
        assert "_raw" in columns and "_deleted_at" in columns
        query = sql.SQL("SELECT {} FROM {} ORDER BY id").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(table.raw_schema, table.name),
        )
        assert direct.fetch_all(query) == warehouse.fetch_all(query), table.name
    engine_for(direct.url).dispose()
    embedded_pg.drop_database(pg_server, "direct_copy")


def small_pages(project: str) -> SupabaseResource:
    """Pages of 7 rows: a sandbox table of a few hundred splits into ranges and bisects deep."""
    return supabase_resource(project.title(), f"SUPABASE_{project.upper()}", backoff_seconds=0.01,
                             page_size=7)  # fmt: skip


def test_given_a_full_read_then_key_ranges_side_by_side_give_exactly_the_rows(sandbox_env):
    server = sandbox_env.servers["supabase_main"]
    with supabase_resource("Main", "SUPABASE_MAIN", page_size=40).open() as api:
        ranged = [r for page in api.scan_all("landing_leads", BY_UPDATED_AT) for r in page]
        keyset = [r for page in api.scan("landing_leads", BY_UPDATED_AT, None) for r in page]
    assert sorted(r["id"] for r in ranged) == sorted(r["id"] for r in keyset)
    assert sorted(ranged, key=lambda r: r["id"]) == sorted(keyset, key=lambda r: r["id"])
    counts = [r for r in server.requests if r.headers.get("prefer") == "count=exact"]
    cuts = [r for r in server.requests if "offset=" in r.query]
    assert len(counts) == 1 and len(cuts) == 3  # one count, the table cut into 4 ranges
    assert {(r.method, "limit=1" in r.query) for r in counts} == {("GET", True)}


def delete_some(sandbox: Sandbox, project: str, name: str, swap: bool = True) -> list:
    """Delete from the source a run of 5 keys in key order and 5 at random; with `swap`, also
    its largest key, adding a row keyed just above it (the same bucket: an equal count, another
    digest; counts cannot see it). Return the keys deleted, as text."""
    target = sql.Identifier(name)
    with psycopg.connect(sandbox.dsn(project), autocommit=True) as conn:
        keys = [k for (k,) in conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(target))]
        few = max(1, min(5, len(keys) // 8))  # a table of a dozen rows keeps most of them
        start = len(keys) // 10
        others = keys[:start] + keys[start + few : -1]
        gone = [*keys[start : start + few], *random.Random(14).sample(others, few)]
        conn.execute("SET session_replication_role = replica")  # rows referencing them stay
        if swap:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, to_jsonb(s)"
                    " || jsonb_build_object('id', %s::text))).* FROM {t} s WHERE id = %s"
                ).format(t=target),
                (just_above(keys[-1]), keys[-1]),
            )
            gone.append(keys[-1])
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(target), (gone,))
    return sorted(map(str, gone))


def just_above(key: object) -> str:
    """A key sorting right after `key`, in byte order."""
    if isinstance(key, int):
        return str(key + 1)
    if isinstance(key, uuid.UUID):
        return str(uuid.UUID(int=key.int + 1))
    return f"{key}~"


def detect(resource: SupabaseResource, warehouse, name: str) -> tuple[Deletions, int]:
    """Deletion detection on a loaded table: what it found and the requests it took."""
    table = next(t for t in SUPABASE_TABLES if t.name == name)
    with resource.open() as api:
        ready = prepare_table(warehouse, api, table)
        before = api.stats.requests
        found = find_deleted(api, warehouse, ready.plan, ready.spec)
        return found, api.stats.requests - before


def load(resource: SupabaseResource, warehouse, name: str) -> dict[str, Any]:
    return sync_table(warehouse, resource, next(t for t in SUPABASE_TABLES if t.name == name))


def test_given_rows_deleted_then_each_method_finds_them_exactly(
    sandbox_env, warehouse, monkeypatch
):
    """Main has the digest function, Traffic has not; the direct path needs none. Buckets of
    a few keys, so that differing buckets are cut finer and their keys asked in chunks."""
    monkeypatch.setattr("assets.supabase.DIGEST_BUCKETS", 64)
    monkeypatch.setattr("assets.supabase.BUCKET_KEYS", 60)  # ~11 buckets of 40 keys: cut finer
    first = load(small_pages("main"), warehouse, "landing_leads")
    # the first load into an empty mirror holds what it just read: nothing to look for
    assert (first["deletion_method"], first["deletion_requests"]) == (
        "none: the first load into an empty mirror", 0)  # fmt: skip
    load(small_pages("traffic"), warehouse, "all_sales_tracking")
    gone = delete_some(sandbox_env, "main", "landing_leads")
    counted = delete_some(sandbox_env, "traffic", "all_sales_tracking", swap=False)
    server = sandbox_env.servers["supabase_main"]
    before = len(server.requests)
    rest, rest_requests = detect(small_pages("main"), warehouse, "landing_leads")
    assert (sorted(map(str, rest.keys)), rest.method, rest.note) == (gone, DIGESTS, None)
    calls = [r for r in server.requests[before:] if r.path.endswith(f"/rpc/{KEY_DIGEST}")]
    assert calls and {r.method for r in calls} == {"POST"} and len(calls) == rest_requests
    # buckets of 40 keys, those that differ cut into 7s, their keys: the id scan at pages of 7 is
    # over 300 requests, the counts' bisection over 60
    assert rest_requests == 3
    monkeypatch.setenv("SUPABASE_MAIN_DB_URL", sandbox_env.dsn("main"))
    direct, _ = detect(small_pages("main"), warehouse, "landing_leads")
    assert (sorted(map(str, direct.keys)), direct.method) == (gone, DIGESTS)
    slow, _ = detect(small_pages("traffic"), warehouse, "all_sales_tracking")
    assert (sorted(map(str, slow.keys)), slow.method) == (counted, COUNTS)
    assert slow.note == (
        f"deletions found by {COUNTS}, not digests: the project has no function {KEY_DIGEST}: "
        f"{INSTALL_KEY_DIGEST}"
    )
    counts = sync_table(
        warehouse, small_pages("traffic"), SUPABASE_TABLES_BY_NAME["all_sales_tracking"]
    )
    assert counts["deletion_method"] == COUNTS and INSTALL_KEY_DIGEST in counts["notes"]


FAILING_FUNCTION = """CREATE OR REPLACE FUNCTION warehouse_key_digest(
    table_name text, key_column text, bounds text[], buckets integer[] DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$"""


FAILURES = (  # (code, the function's error, None: dropped after the schema was read)
    ("PGRST202", None),
    ("42501", "permission denied for table landing_leads"),
    ("42P01", 'relation "landing_leads" does not exist'),
)


def test_given_the_function_fails_then_counts_find_them_and_say_why(
    monkeypatch, warehouse, pg_server
):
    with Sandbox(pg_server, prefix="digest_fails", **SMALL_SANDBOX) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        load(MAIN, warehouse, "landing_leads")
        gone = delete_some(sandbox, "main", "landing_leads", swap=False)
        table = SUPABASE_TABLES_BY_NAME["landing_leads"]
        for code, message in FAILURES:
            with (
                supabase_resource("Main", "SUPABASE_MAIN", page_size=100).open() as api,
                psycopg.connect(sandbox.dsn("main"), autocommit=True) as conn,
            ):
                ready = prepare_table(warehouse, api, table)  # the schema lists the function
                if message is None:
                    conn.execute(f"DROP FUNCTION {KEY_DIGEST}")
                else:
                    conn.execute(FAILING_FUNCTION.format(message=message, code=code))
                found = find_deleted(api, warehouse, ready.plan, ready.spec)
                conn.execute(load_sql(KEY_DIGEST_FILE.removeprefix("sql/").removesuffix(".sql")))
            assert (sorted(map(str, found.keys)), found.method) == (gone, COUNTS), code
            assert found.note is not None and found.note.count(code) == 1, found.note
            assert found.note.startswith(f"deletions found by {COUNTS}, not digests: its function")


def emptied(sandbox: Sandbox, project: str, name: str) -> Callable[[], int]:
    """Empty the source table (its rows put aside); the function returned puts them back."""
    target, kept = sql.Identifier(name), sql.Identifier(f"{name}_kept")
    with psycopg.connect(sandbox.dsn(project), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(kept, target))
        conn.execute("SET session_replication_role = replica")  # rows referencing them stay
        conn.execute(sql.SQL("DELETE FROM {}").format(target))

    def refill() -> int:
        with psycopg.connect(sandbox.dsn(project), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            return conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, kept)
            ).rowcount

    return refill


EMPTY_TABLES = (  # a bigint key by timestamp and by key, a uuid key, a text key
    ("main", "landing_leads", "bigint", "timestamp"),
    ("main", "express_course_sales", "bigint", "key"),
    ("tripwire", "tripwire_purchases", "uuid", "timestamp"),
    ("traffic", "targetologists", "text", "timestamp"),
)


def test_given_an_empty_table_then_it_loads_and_its_first_rows_arrive_later(
    monkeypatch, warehouse, pg_server
):
    with Sandbox(pg_server, prefix="empty", variant="keys", **FAST_SANDBOX) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        refills = {name: emptied(sandbox, project, name) for project, name, _, _ in EMPTY_TABLES}
        for project, name, key_type, cursor in EMPTY_TABLES:
            table = next(t for t in SUPABASE_TABLES if t.name == name)
            resource = small_pages(project)
            for _ in range(2):  # the first run stores a cursor of nothing read; the next reads it
                counts = sync_table(warehouse, resource, table)
                assert (counts["rows_read"], counts["rows_deleted"]) == (0, 0), name
            assert (counts["key"], counts["cursor"].split()[0]) == (f"id ({key_type})", cursor)
            arrived = refills[name]()
            assert arrived and sync_table(warehouse, resource, table)["rows_inserted"] == arrived


def test_given_uuid_and_text_keys_then_deletions_found_exactly(monkeypatch, warehouse, pg_server):
    """A uuid key through the function (Tripwire has it), a text key by counts (Traffic has
    not) and by the direct path's digests (text in byte order on both sides)."""
    monkeypatch.setattr("assets.supabase.DIGEST_BUCKETS", 4)
    with Sandbox(pg_server, prefix="keys_del", variant="keys", **FAST_SANDBOX) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        for project, name in (("tripwire", "tripwire_purchases"), ("traffic", "targetologists")):
            load(small_pages(project), warehouse, name)
            gone = delete_some(sandbox, project, name, swap=project == "tripwire")
            found, _ = detect(small_pages(project), warehouse, name)
            assert sorted(map(str, found.keys)) == gone, name
            assert found.method == (DIGESTS if project == "tripwire" else COUNTS), name
        monkeypatch.setenv("SUPABASE_TRAFFIC_DB_URL", sandbox.dsn("traffic"))
        found, _ = detect(small_pages("traffic"), warehouse, "targetologists")
        assert (sorted(map(str, found.keys)), found.method) == (gone, DIGESTS)


def test_given_a_proxy_taking_small_bodies_then_digests_fit_it_or_say_what_to_raise(
    monkeypatch, warehouse, pg_server
):
    """A self-hosted project's nginx refuses bodies beyond its limit: the bounds are thinned to
    what we send (here about 10 uuids, as 1M rows of long text keys would be), and a proxy that
    takes less still loses no row: counts find them, and the note says what to raise."""
    monkeypatch.setattr("assets.supabase.DIGEST_BUCKETS", 64)
    monkeypatch.setattr("assets.supabase.DIGEST_BODY_BYTES", 400)
    with Sandbox(pg_server, prefix="body_limit", variant="keys", **FAST_SANDBOX) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        load(small_pages("tripwire"), warehouse, "tripwire_purchases")
        gone = delete_some(sandbox, "tripwire", "tripwire_purchases")
        proxy, server = sandbox.postgrest["tripwire"], sandbox.servers["supabase_tripwire"]
        proxy.max_body_bytes, before = 1024, len(server.requests)
        found, _ = detect(small_pages("tripwire"), warehouse, "tripwire_purchases")
        assert (sorted(map(str, found.keys)), found.method, found.note) == (gone, DIGESTS, None)
        calls = [r for r in server.requests[before:] if r.path.endswith(f"/rpc/{KEY_DIGEST}")]
        assert calls and {r.status for r in calls} == {200}
        assert max(int(r.headers["content-length"]) for r in calls) <= 1024
        proxy.max_body_bytes, before = 300, len(server.requests)
        found, _ = detect(small_pages("tripwire"), warehouse, "tripwire_purchases")
        assert (sorted(map(str, found.keys)), found.method) == (gone, COUNTS)
        refused = next(r for r in server.requests[before:] if r.status == 413)
        assert found.note == (
            f"deletions found by {COUNTS}, not digests: a proxy in front of SUPABASE_TRIPWIRE_URL "
            f"refused its {refused.headers['content-length']}-byte request body (HTTP 413); "
            "raise its limit to 1 MiB (nginx: client_max_body_size 1m)"
        )


def test_given_an_unchanged_table_when_prepared_again_then_nothing_is_rewritten(
    monkeypatch, shared_sandbox, warehouse
):
    """An hour of an unchanged table writes no catalog row and no shape row before its rows
    (each write would cost a WAL flush at commit); a view replaced otherwise is made again."""
    point_env_at(monkeypatch, warehouse, shared_sandbox)  # read only: the source is not changed
    table = SUPABASE_TABLES_BY_NAME["landing_leads"]
    versions = (
        "SELECT (SELECT xmin::text FROM pg_rewrite WHERE ev_class = 'stg_supabase_main."
        "landing_leads'::regclass), (SELECT xmin::text FROM ops.source_schemas"
        " WHERE entity = 'landing_leads')"
    )
    with MAIN.open() as api:
        prepare_table(warehouse, api, table)
        before = warehouse.fetch_all(versions)
        again = prepare_table(warehouse, api, table)
        assert warehouse.fetch_all(versions) == before
        assert again.changes.summary == "unchanged"
        assert again.columns == prepare_table(warehouse, api, table).columns
        with warehouse.connection() as conn:
            conn.execute("COMMENT ON VIEW stg_supabase_main.landing_leads IS NULL")
        prepare_table(warehouse, api, table)
    assert warehouse.fetch_all(versions)[0][0] != before[0][0]


def test_given_a_first_load_then_the_mirror_is_analyzed_for_the_next_loads_plans(
    monkeypatch, shared_sandbox, warehouse
):
    """Planned on an empty table's statistics, an hourly load's hash lookup would scan the
    whole mirror once per batch of keys."""
    point_env_at(monkeypatch, warehouse, shared_sandbox)  # read only: the source is not changed
    counts = sync_table(warehouse, MAIN, SUPABASE_TABLES_BY_NAME["landing_leads"])
    planned = warehouse.fetch_all(
        "SELECT reltuples FROM pg_class WHERE oid = 'raw_supabase_main.landing_leads'::regclass"
    )
    assert planned == [(counts["rows_inserted"],)] and counts["rows_inserted"] > 0

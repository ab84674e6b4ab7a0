"""Models declare what they read, and the incremental build follows the declaration: each model's
SQL is parsed (through the functions it calls, read from PostgreSQL) and must read exactly the
relations its `-- reads:` header lists; its touched-days SQL may read only those (and the model's
own rows). On a small world written straight into raw tables of a real PostgreSQL: an idle build
rewrites nothing, one changed deal rebuilds its day only in core and in the mart (core.sales by
sale key: a deal no longer won takes its sale and day along), a change to an
input with no day mapping (the attribution rules) rebuilds every day, and a mart's watermark
follows only the models it reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from assets.models import DAY_COLUMNS, MODEL_TABLES
from contract.model_params import VENDOR_FACTS
from resources.amocrm import WON_STATUS_ID
from resources.canonical import CANONICAL_TABLES, placeholder_sql
from resources.model_inputs import (
    declared_inputs,
    functions_called,
    relations_read,
    touched_sql,
)
from resources.sql_files import load_sql, model_names
from resources.warehouse import WarehouseResource

EXPRESS, FLAGSHIP = 11, 12
PARAMS = {"tz": "Asia/Almaty", "currency": "KZT", "fx": "{}", "express": EXPRESS,
          "flagship": FLAGSHIP, **VENDOR_FACTS}  # fmt: skip


def read_through_functions(warehouse: WarehouseResource, text: str) -> set[str]:
    """The relations `text` reads, and those the functions it calls read (their bodies as
    PostgreSQL holds them), recursively."""
    relations, seen, pending = relations_read(text), set(), functions_called(text)
    while pending:
        function = pending.pop()
        seen.add(function)
        ((body,),) = warehouse.fetch_all(
            "SELECT prosrc FROM pg_proc WHERE oid = %s::regproc", (function,)
        )
        relations |= relations_read(body)
        pending |= functions_called(body) - seen
    return relations


def undeclared(warehouse: WarehouseResource, table: str, text: str) -> dict[str, set[str]]:
    """What `text` (the model's SQL) reads but `table` does not declare, and the reverse."""
    read, declared = read_through_functions(warehouse, text), set(declared_inputs(table))
    return {"read, not declared": read - declared, "declared, not read": declared - read}


def test_each_model_reads_exactly_its_declared_inputs(warehouse):
    assert set(MODEL_TABLES) == {*model_names("core"), *model_names("marts")}
    for table in MODEL_TABLES:
        text = load_sql(table.replace(".", "/"))
        assert undeclared(warehouse, table, text) == {
            "read, not declared": set(), "declared, not read": set()}, table  # fmt: skip
        touched = touched_sql(table)
        if touched:  # its changes mapped to days: only what the model reads, or its own rows
            assert relations_read(touched) <= {*declared_inputs(table), table}, table
        if DAY_COLUMNS[table]:  # the day (or, keyed, the row key) predicate is in the model
            assert "%(days)s" in text or "%(keys)s" in text, table


def test_given_a_join_added_without_declaring_it_then_the_comparison_names_it(warehouse):
    text = (
        load_sql("core/leads")
        .replace(
            "WHERE l._deleted_at IS NULL",
            "LEFT JOIN raw_amocrm.lead_events e ON e.entity_id = l.amocrm_lead_id\n"
            "WHERE l._deleted_at IS NULL",
        )
        .replace("raw_amocrm.leads", "raw_amocrm.pipelines")
    )
    assert undeclared(warehouse, "core.leads", text) == {
        "read, not declared": {"raw_amocrm.lead_events", "raw_amocrm.pipelines"},
        "declared, not read": {"raw_amocrm.leads"},
    }


def put_deal(warehouse: WarehouseResource, deal_id: int, created: datetime, status: int) -> None:
    """An AmoCRM deal in the express pipeline, stamped now (core.leads lists it as a lead)."""
    warehouse.fetch_all(
        "INSERT INTO raw_amocrm.leads (id, pipeline_id, status_id, created_at, updated_at,"
        " is_deleted, _raw, _loaded_at) VALUES (%s, %s, %s, %s, %s, false, '{}', clock_timestamp())"
        " ON CONFLICT (id) DO UPDATE SET status_id = EXCLUDED.status_id,"
        " _loaded_at = EXCLUDED._loaded_at RETURNING id",
        (deal_id, EXPRESS, status, created, created),
    )


def build(warehouse: WarehouseResource, *tables: str) -> dict[str, tuple[Any, ...]]:
    """Build `tables` in order; each one's (days rebuilt, rows written)."""
    built = {}
    for table in tables:
        result = warehouse.run_model(table, PARAMS, day_column=DAY_COLUMNS[table])
        built[table] = (result.days_rebuilt, result.rows_written)
    return built


def touch_rules(warehouse: WarehouseResource) -> None:
    """A targetologist row loaded now (the staging view stands for its raw table)."""
    table = next(t for t in CANONICAL_TABLES if t.name == "targetologists")
    with warehouse.connection() as conn:
        view = placeholder_sql(table).as_string(conn)
        conn.execute(
            view.replace("NULL::timestamptz AS _loaded_at", "now() AS _loaded_at")
            .replace("WHERE false", "")
            .encode()
        )


def test_given_declared_inputs_then_only_their_changed_days_are_rebuilt(warehouse):
    days = [datetime(2026, 9, d, 6, tzinfo=UTC) for d in (1, 2, 3)]
    for deal_id, created in enumerate(days, 1):
        put_deal(warehouse, deal_id, created, status=1)
    leads = ("core.leads", "marts.leads_total")
    assert build(warehouse, *leads) == {"core.leads": (None, 3), "marts.leads_total": (None, 3)}
    # nothing changed: nothing rewritten
    assert build(warehouse, *leads) == {"core.leads": (0, 0), "marts.leads_total": (0, 0)}
    put_deal(warehouse, 2, days[1], status=2)
    put_deal(warehouse, 4, days[1], status=1)
    assert build(warehouse, *leads) == {"core.leads": (1, 2), "marts.leads_total": (1, 1)}
    assert warehouse.fetch_all("SELECT day::text, leads FROM marts.leads_total ORDER BY 1") == [
        ("2026-09-01", 1), ("2026-09-02", 2), ("2026-09-03", 1)]  # fmt: skip
    touch_rules(warehouse)  # read through core.attribute, mapped to no day: every day
    assert build(warehouse, *leads) == {"core.leads": (None, 4), "marts.leads_total": (None, 3)}


def test_given_deals_won_and_lost_then_core_sales_rebuilds_their_sales_only(warehouse):
    days = [datetime(2026, 9, d, 6, tzinfo=UTC) for d in (1, 2, 3)]
    for deal_id, created in enumerate(days, 1):
        put_deal(warehouse, deal_id, created, status=WON_STATUS_ID)
    sales = ("core.sales", "marts.sales_total")
    assert build(warehouse, *sales) == {"core.sales": (None, 3), "marts.sales_total": (None, 3)}
    assert build(warehouse, *sales) == {"core.sales": (0, 0), "marts.sales_total": (0, 0)}
    put_deal(warehouse, 2, days[1], status=1)  # no longer won: its sale goes, its day with it
    put_deal(warehouse, 4, days[2], status=WON_STATUS_ID)
    # by key: one sale written, two gone or moved; the mart rebuilds those sales' two days
    assert build(warehouse, *sales) == {"core.sales": (2, 1), "marts.sales_total": (2, 1)}
    assert warehouse.fetch_all("SELECT sale_key FROM core.sales ORDER BY 1") == [
        ("deal:1",), ("deal:3",), ("deal:4",)]  # fmt: skip
    assert warehouse.fetch_all("SELECT day::text, sales FROM marts.sales_total ORDER BY 1") == [
        ("2026-09-01", 1), ("2026-09-03", 2)]  # fmt: skip


def test_given_a_mart_then_its_watermark_follows_only_the_models_it_reads(warehouse):
    build(warehouse, "core.sales", "core.leads", "marts.sales_total")
    watermarks = dict(warehouse.fetch_all("SELECT model, watermark FROM ops.model_builds"))
    # core.leads was built after core.sales: the sales mart's reads reflect raw up to core.sales
    assert watermarks["core.leads"] > watermarks["core.sales"]
    assert watermarks["marts.sales_total"] == watermarks["core.sales"]

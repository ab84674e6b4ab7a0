"""Served pages as COPY rows: the page-at-a-time path gives exactly the rows and the reasons of
the record-by-record one (a page holding anything but objects takes the latter)."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from contract.config import load_contract
from contract.plan import plan_table
from contract.staging import RowValues, raw_columns
from resources import vendor_json
from resources.supabase import SourceColumn, TableShape
from resources.warehouse import Columns, Rejected

STAMP = "timestamp with time zone"
SHAPE = TableShape(
    "landing_leads",
    (
        SourceColumn("id", "bigint"),
        SourceColumn("created_at", STAMP),
        SourceColumn("funnel", "text"),
        SourceColumn("utm_source", "text"),
        SourceColumn("amocrm_lead_id", "bigint"),
        SourceColumn("synced_to_amocrm", "boolean"),
        SourceColumn("synced_at", STAMP),
        SourceColumn("extra", "jsonb"),
    ),
    ("id",),
)
PLAN = plan_table(load_contract().entry("landing_leads"), SHAPE)


def record(i: int, **changes: Any) -> dict[str, Any]:
    served = {
        "id": i, "created_at": f"2026-01-0{i % 9 + 1}T10:00:00+00:00", "funnel": "express",
        "utm_source": "facebook", "amocrm_lead_id": 30_000_000 + i, "synced_to_amocrm": True,
        "synced_at": None, "extra": {"n": i} if i % 2 else None,
    }  # fmt: skip
    return {**served, **changes}


def rows(items: Sequence[Columns | Rejected]) -> list[Any]:
    """The page's rows (and reasons) in order, as the loader copies them."""
    found: list[Any] = []
    for item in items:
        found += zip(*item.values, strict=True) if isinstance(item, Columns) else [item]
    return found


def one_by_one(values: RowValues, records: list[Any]) -> list[Any]:
    """The record-by-record path: something that is not an object in the page forces it."""
    return rows(values.page([*records, "not a record"]))[:-1]


def test_a_clean_page_gives_the_rows_of_the_record_by_record_path() -> None:
    values = RowValues(raw_columns(SHAPE), PLAN)
    page = [record(i) for i in range(1, 50)]
    page[3]["utm_source"] = {"odd": [1, 2]}  # an object in a text column: JSON text
    page[4].pop("funnel")  # a column a record lacks: NULL
    got = rows(values.page(page))
    assert got == one_by_one(values, page)
    assert got[3][3] == '{"odd":[1,2]}' and got[4][2] is None
    assert got[0][-1] == vendor_json.dumps(page[0]) and got[0][7] == '{"n":1}'


def test_a_page_with_a_failing_record_gives_its_reason_and_the_other_rows() -> None:
    values = RowValues(raw_columns(SHAPE), PLAN)
    clean = [record(i) for i in range(1, 6)]
    for bad, reason in [
        (record(6, id=None), "id: the key is missing"),
        (record(6, created_at="yesterday"), "is not a valid timestamptz"),
        (record(6, synced_to_amocrm=None), "missing, and the models need it"),
        (record(6, amocrm_lead_id=2**64), "is not a valid bigint"),
    ]:
        got = rows(values.page([*clean, bad]))
        assert got[:-1] == rows(values.page(clean))
        assert isinstance(got[-1], Rejected) and reason in got[-1].reason, got[-1]
    # a form the column test does not take but the record's check does: still a row
    assert not isinstance(values.page([*clean, record(6, amocrm_lead_id="42")])[-1], Rejected)


def test_values_beyond_orjson_keep_their_exact_json() -> None:
    values = RowValues(raw_columns(SHAPE), PLAN)
    page = [record(1, extra={"big": 2**70, "amount": Decimal("1e400")}), record(2)]
    got = rows(values.page(page))
    assert got == one_by_one(values, page)
    assert got[0][7] == '{"big": 1180591620717411303424, "amount": 1E+400}'
    assert got[0][-1] == vendor_json.dumps(page[0])

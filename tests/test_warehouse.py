"""The warehouse loader against a real PostgreSQL: COPY into staging, one merge, the cursor in the
same transaction, quarantine, deletion marks, DDL versioning, and hostile strings byte-exact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from resources.binary_copy import binary_rows
from resources.raw_mirror import ensure_mirror
from resources.warehouse import Rejected, TableSpec, WarehouseResource

SPEC = TableSpec(
    "raw_supabase_main",
    "prooftest_leads",
    ("id", "created_at", "updated_at", "name", "utm_source", "_raw"),
)
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
HOSTILE = [
    'O\'Brien "quoted"',
    "tab\there",
    "new\nline\r\nand CR",
    "back\\slash \\N \\. end",
    "emoji 👩‍💻🚀 中文",
    "x" * 10_000,
    "",
    "comma, semicolon; | pipe",
]


@pytest.fixture(autouse=True)
def prooftest_mirror(request: pytest.FixtureRequest) -> None:
    """The raw table the loader writes, created as a Supabase load creates it."""
    if "warehouse" not in request.fixturenames:
        return
    warehouse: WarehouseResource = request.getfixturevalue("warehouse")
    columns = [("id", "bigint"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
               ("name", "text"), ("utm_source", "text")]  # fmt: skip
    with warehouse.connection() as conn:
        ensure_mirror(conn, SPEC.schema, SPEC.name, columns, "id")


def rows(ids: range, name: str = "n") -> list[tuple[Any, ...]]:
    return [(i, T0, T0, f"{name}{i}", None, f'{{"id": {i}}}') for i in ids]


def load(warehouse: WarehouseResource, data: Any, cursor: Any = None):
    return warehouse.load(
        SPEC,
        iter(data),
        source="test",
        entity="prooftest_leads",
        new_cursor=(lambda old: cursor) if cursor is not None else None,
    )


def stored(warehouse: WarehouseResource) -> list[tuple]:
    return warehouse.fetch_all(
        "SELECT id, name, _deleted_at IS NOT NULL"
        " FROM raw_supabase_main.prooftest_leads ORDER BY id"
    )


def test_given_same_window_twice_when_loaded_then_same_rows_and_second_is_all_unchanged(warehouse):
    first = load(warehouse, rows(range(1, 101)), cursor={"id": 100})
    second = load(warehouse, rows(range(1, 101)), cursor={"id": 100})
    assert (first.inserted, first.updated, first.unchanged) == (100, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 100)
    assert len(stored(warehouse)) == 100
    assert warehouse.get_cursor("test", "prooftest_leads") == {"id": 100}


def test_given_changed_rows_when_loaded_then_updated_counted_and_last_copy_of_a_key_wins(warehouse):
    load(warehouse, rows(range(1, 11)))
    result = load(warehouse, rows(range(5, 8), name="changed") + rows(range(7, 8), name="last"))
    assert (result.rows_in, result.inserted, result.updated, result.unchanged) == (4, 0, 3, 0)
    names = dict((i, n) for i, n, _ in stored(warehouse))
    assert names[5] == "changed5" and names[7] == "last7" and names[8] == "n8"


def test_given_exception_mid_stream_when_loading_then_no_rows_and_cursor_not_advanced(warehouse):
    load(warehouse, rows(range(1, 4)), cursor={"id": 3})

    def failing() -> Iterator[tuple]:
        yield from rows(range(4, 50))
        raise ConnectionError("vendor went away mid-scan")

    with pytest.raises(ConnectionError):
        load(warehouse, failing(), cursor={"id": 49})
    assert [r[0] for r in stored(warehouse)] == [1, 2, 3]
    assert warehouse.get_cursor("test", "prooftest_leads") == {"id": 3}
    assert warehouse.fetch_all("SELECT count(*) FROM ops.load_log")[0][0] == 1


def test_given_hostile_strings_when_loaded_then_byte_exact_and_refused_rows_quarantined(warehouse):
    data = [(i, T0, T0, text, None, "{}") for i, text in enumerate(HOSTILE, start=1)]
    refused = {
        97: ("a NUL\x00inside", "{}", "name: a NUL character"),
        98: ("lone \ud800 surrogate", "{}", "name: not valid UTF-8"),
        99: ("raw NUL", '{"note": "a\\u0000b"}', "_raw: unsupported Unicode escape sequence"),
    }
    data += [(i, T0, T0, name, None, raw) for i, (name, raw, _) in refused.items()]
    result = load(warehouse, data)
    got = dict((i, n) for i, n, _ in stored(warehouse))
    assert [got[i] for i in range(1, len(HOSTILE) + 1)] == HOSTILE
    assert result.rows_in == len(HOSTILE) and result.quarantined == len(refused)
    quarantined = warehouse.fetch_all(
        "SELECT record_key, reason, record, record_text FROM ops.quarantine ORDER BY record_key"
    )
    assert len(quarantined) == len(refused)
    for (key, reason, record, text), (i, (_, _, why)) in zip(
        quarantined, refused.items(), strict=True
    ):
        assert key == str(i) and reason.startswith(why), reason
        assert (record if record is not None else text) in ({}, '{"note": "a\\u0000b"}')


def test_given_rejected_records_when_loaded_then_quarantined_once_and_good_rows_kept(warehouse):
    bad = Rejected(
        "7", "created_at: Input should be a valid datetime", {"id": 7, "created_at": "x"}
    )
    result = load(warehouse, [*rows(range(1, 4)), bad])
    load(warehouse, [*rows(range(1, 4)), bad])  # the same bad record met again
    assert result.quarantined == 1 and result.rows_in == 3
    assert len(stored(warehouse)) == 3
    assert warehouse.fetch_all("SELECT record_key, reason, record FROM ops.quarantine") == [
        ("7", "created_at: Input should be a valid datetime", {"id": 7, "created_at": "x"})
    ]


def test_given_keys_gone_from_source_when_deletions_marked_then_flagged_and_revived_on_return(
    warehouse,
):
    load(warehouse, rows(range(1, 6)))
    assert warehouse.mark_deleted(SPEC, [3, 5]) == 2
    assert [r for r in stored(warehouse) if r[2]] == [(3, "n3", True), (5, "n5", True)]
    assert warehouse.mark_deleted(SPEC, [3, 5]) == 0
    result = load(warehouse, rows(range(3, 4)))
    assert result.updated == 1
    assert (3, "n3", False) in stored(warehouse)


def test_given_applied_ddl_when_applied_again_then_noop(warehouse):
    before = warehouse.fetch_all("SELECT version, applied_at FROM ops.schema_migrations")
    assert warehouse.apply_ddl() == []
    assert warehouse.fetch_all("SELECT version, applied_at FROM ops.schema_migrations") == before
    assert len(before) >= 3


def test_given_applied_migration_edited_when_applied_then_clear_error(warehouse):
    warehouse.fetch_all("UPDATE ops.schema_migrations SET checksum = 'x' RETURNING 1")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        warehouse.apply_ddl()


TYPED = TableSpec(SPEC.schema, SPEC.name, SPEC.columns, SPEC.key,
                  ("bigint", "timestamptz", "timestamptz", "text", "text", "jsonb"))  # fmt: skip
SERVED_AT = "2026-09-01T12:00:00.5+00:00"  # as PostgREST writes a timestamptz


def test_given_typed_spec_when_pages_loaded_then_binary_copy_stores_what_text_copy_stores(
    warehouse,
):
    """Clean batches go as binary COPY; a batch holding a value PostgreSQL refuses (or one
    whose binary form could differ: a JSON true in a bigint column, a wall time) goes as text,
    so the stored rows and the quarantine's reasons are those of a text COPY."""
    refused = [
        (101, SERVED_AT, SERVED_AT, "a NUL\x00inside", None, "{}"),
        (102, SERVED_AT, SERVED_AT, "lone \ud800 surrogate", None, "{}"),
        (103, SERVED_AT, SERVED_AT, "raw NUL", None, '{"note": "a\\u0000b"}'),
        (104, "2026-09-31T12:00:00+00:00", SERVED_AT, "no such day", None, "{}"),
        (105, SERVED_AT, SERVED_AT, "true as a key", True, "{}"),
        (True, SERVED_AT, SERVED_AT, "true as the key", None, "{}"),
        (106, "2026-09-01T12:00:00", SERVED_AT, "a wall time", None, "{}"),
    ]
    clean = [(i, SERVED_AT, SERVED_AT, text, None, f'{{"id": {i}}}')
             for i, text in enumerate(HOSTILE, start=1)]  # fmt: skip
    columns = [*zip(*clean, strict=True), [1] * len(clean)]
    assert binary_rows((*TYPED.types, "bigint"), columns) is not None
    outcomes = []
    for spec in (SPEC, TYPED):
        for batch in (clean, refused):
            result = warehouse.load(spec, iter(batch), source="test", entity="prooftest_leads")
            outcomes.append((result.rows_in, result.quarantined))
        outcomes.append(warehouse.fetch_all(
            "SELECT id, created_at, name, utm_source, _raw FROM raw_supabase_main.prooftest_leads"
            " ORDER BY id"))  # fmt: skip
        outcomes.append(warehouse.fetch_all(
            "SELECT record_key, reason FROM ops.quarantine ORDER BY record_key"))  # fmt: skip
        with warehouse.connection() as conn:
            conn.execute("TRUNCATE raw_supabase_main.prooftest_leads, ops.quarantine")
    text, binary = outcomes[:4], outcomes[4:]
    assert binary == text
    assert text[0] == (len(HOSTILE), 0) and text[2][0][2] == HOSTILE[0]


@pytest.mark.parametrize(
    ("stored", "value"),
    [
        ("bigint", True),
        ("integer", 2**31),
        ("bigint", "7"),
        ("timestamptz", "2026-09-01T12:00:00"),  # a wall time: the session's zone decides
        ("timestamptz", "2026-09-01T12:00:00.1234567+00:00"),  # rounded there, cut here
        ("timestamptz", "2026-W36-2T12:00:00+00:00"),
        ("timestamp", "2026-09-01T12:00:00+05:00"),
        ("date", "2026-244"),
        ("uuid", "urn:uuid:12345678-1234-1234-1234-123456789012"),
        ("numeric", 1),  # no binary form here
    ],
)
def test_given_value_binary_could_read_otherwise_when_batched_then_batch_goes_as_text(
    stored, value
):
    assert binary_rows((stored, "bigint"), [(None, value), (1, 2)]) is None
    assert binary_rows(("timestamptz",), [(SERVED_AT,)]) is not None

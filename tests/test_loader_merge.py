"""The loader's server side against a real PostgreSQL.

The row hash: a re-read row whose hash equals the stored live row's is staged by its key alone
and never rewritten; changed rows (in a typed column or only inside `_raw`), rows stored before
hashing, snapshot deletions and revivals, the last copy of a key read twice, and the key types
of real users' tables (bigint, integer, uuid, text).

A first load into an empty table COPYs straight into it (no staging, no merge): counts exact, a
key read twice still ends as its last copy (its batch and the later ones go through staging and
the merge), the changes lock held while rows go in, a failed stream leaving nothing behind.
Refused rows on that path: tests/test_warehouse.py's hostile and binary tests load empty tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from resources import vendor_json
from resources import warehouse as loader
from resources.raw_mirror import ensure_mirror
from resources.warehouse import CHANGES_LOCK, LoadResult, Rejected, TableSpec, WarehouseResource

T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
COLUMNS = [("id", "bigint"), ("name", "text"), ("updated_at", "timestamptz")]
# as a Supabase load builds it: every typed column is its record's field, all of it in `_raw`
SPEC = TableSpec("raw_supabase_main", "prooftest_leads", ("id", "name", "updated_at", "_raw"),
                 ("id",), ("bigint", "text", "timestamptz", "jsonb"),
                 typed_from_raw=True)  # fmt: skip


@pytest.fixture
def mirror(warehouse: WarehouseResource) -> WarehouseResource:
    with warehouse.connection() as conn:
        ensure_mirror(conn, SPEC.schema, SPEC.name, COLUMNS, "id")
    return warehouse


def record(i: int, name: str = "n", **extra: Any) -> tuple[Any, ...]:
    raw = {"id": i, "name": f"{name}{i}", "updated_at": T0.isoformat(), **extra}
    return (i, f"{name}{i}", T0.isoformat(), vendor_json.dumps(raw))


def load(warehouse: WarehouseResource, data: list[Any], snapshot: bool = False) -> LoadResult:
    return warehouse.load(SPEC, iter(data), source="test", entity="prooftest_leads",
                          snapshot=snapshot)  # fmt: skip


def versions(warehouse: WarehouseResource) -> dict[int, tuple[Any, ...]]:
    """Each row's tuple version (xmin changes on every write), `_loaded_at` and deletion."""
    rows = warehouse.fetch_all(
        "SELECT id, xmin::text, _loaded_at, _deleted_at IS NOT NULL, _row_hash IS NOT NULL"
        " FROM raw_supabase_main.prooftest_leads ORDER BY id"
    )
    return {r[0]: r[1:] for r in rows}


def counts(result: LoadResult) -> tuple[int, ...]:
    return (result.rows_in, result.inserted, result.updated, result.unchanged, result.skipped,
            result.deleted)  # fmt: skip


def test_given_nothing_changed_when_reread_then_nothing_staged_and_nothing_written(mirror):
    assert counts(load(mirror, [record(i) for i in range(1, 101)])) == (100, 100, 0, 0, 0, 0)
    before = versions(mirror)
    assert counts(load(mirror, [record(i) for i in range(1, 101)])) == (100, 0, 0, 100, 100, 0)
    assert versions(mirror) == before


def test_given_a_batch_mostly_changed_then_the_next_are_staged_whole_and_still_not_rewritten(
    mirror, monkeypatch
):
    """An incremental read's rows are changed: after a batch that found none held, the next
    PROBE_EVERY - 1 batches skip the lookup (the merge compares their hashes anyway), and the
    one after is looked up again."""
    monkeypatch.setattr(loader, "BATCH_ROWS", 10)
    monkeypatch.setattr(loader, "PROBE_EVERY", 3)
    load(mirror, [record(i) for i in range(1, 101)])
    before = versions(mirror)
    data = [record(i, name="changed") if i <= 10 else record(i) for i in range(1, 101)]
    # batch 1 looked up (none held), 2 and 3 staged whole, 4 to 10 looked up (70 held)
    assert counts(load(mirror, data)) == (100, 0, 10, 90, 70, 0)
    after = versions(mirror)
    assert [i for i in before if before[i] != after[i]] == list(range(1, 11))


def test_given_one_column_or_only_raw_changed_when_reread_then_exactly_that_row_updated(mirror):
    load(mirror, [record(i) for i in range(1, 11)])
    before = versions(mirror)
    data = [record(i) for i in range(1, 11)]
    data[2] = record(3, name="renamed")  # a typed column
    data[6] = record(7, note="a field the mirror does not type")  # only inside `_raw`
    assert counts(load(mirror, data)) == (10, 0, 2, 8, 8, 0)
    after = versions(mirror)
    assert [i for i in before if before[i] != after[i]] == [3, 7]
    assert mirror.fetch_all(
        "SELECT name, _raw->>'note' FROM raw_supabase_main.prooftest_leads WHERE id IN (3, 7)"
        " ORDER BY id"
    ) == [("renamed3", None), ("n7", "a field the mirror does not type")]


def test_given_rows_stored_before_hashing_when_reread_then_rewritten_once_then_skipped(mirror):
    load(mirror, [record(i) for i in range(1, 11)])
    mirror.fetch_all("UPDATE raw_supabase_main.prooftest_leads SET _row_hash = NULL RETURNING 1")
    before = versions(mirror)
    data = [record(i) for i in range(1, 11)]
    data[0] = record(1, name="changed")
    # equal columns: the hash is filled in, `_loaded_at` kept (no model sees a change)
    assert counts(load(mirror, data)) == (10, 0, 1, 9, 0, 0)
    after = versions(mirror)
    assert all(after[i][3] for i in after)
    assert [i for i in after if after[i][1] != before[i][1]] == [1]
    assert counts(load(mirror, data)) == (10, 0, 0, 10, 10, 0)


def test_given_snapshots_when_keys_vanish_and_return_then_deleted_and_revived_exactly(mirror):
    load(mirror, [record(i) for i in range(1, 11)], snapshot=True)
    quarantined = Rejected("3", "name: not a text", {"id": 3})
    seen = [record(i) for i in (1, 2, 4, 5, 6, 7, 8)]
    assert counts(load(mirror, [*seen, quarantined], snapshot=True)) == (7, 0, 0, 7, 7, 2)
    gone = {i for i, v in versions(mirror).items() if v[2]}
    assert gone == {9, 10}  # skipped rows were seen; the quarantined row is not gone
    back = [record(i) for i in range(1, 11)]
    assert counts(load(mirror, back, snapshot=True)) == (10, 0, 2, 8, 8, 0)
    assert not any(v[2] for v in versions(mirror).values())


def test_given_a_key_read_twice_when_its_last_copy_is_the_stored_row_then_it_wins(mirror):
    load(mirror, [record(i) for i in range(1, 4)])
    before = versions(mirror)
    # updated during the scan and back: the first copy differs, the last equals what is stored
    result = load(mirror, [record(2, name="between"), record(1), record(2)])
    assert counts(result) == (3, 0, 0, 2, 2, 0)
    assert versions(mirror) == before
    result = load(mirror, [record(2), record(2, name="last")])
    assert counts(result)[:4] == (2, 0, 1, 0)
    assert mirror.fetch_all("SELECT name FROM raw_supabase_main.prooftest_leads WHERE id = 2") == [
        ("last2",)
    ]


@pytest.mark.parametrize(
    ("key_type", "keys"),
    [
        ("integer", [1, 2, 3]),
        ("uuid", [str(uuid.UUID(int=i)).upper() for i in (1, 2, 3)]),  # served in any case
        ("text", ["a/1", "b'2", "c,3"]),
    ],
)
def test_given_key_types_of_real_tables_when_reread_then_skipped_and_bad_key_quarantined(
    warehouse, key_type, keys
):
    spec = TableSpec(SPEC.schema, "typed_keys", ("key", "_raw"), ("key",), (key_type, "jsonb"),
                     typed_from_raw=True)  # fmt: skip
    with warehouse.connection() as conn:
        ensure_mirror(conn, spec.schema, spec.name, [("key", key_type)], "key")
    data = [(k, vendor_json.dumps({"key": k})) for k in keys]

    def run(rows: list[Any]) -> LoadResult:
        return warehouse.load(spec, iter(rows), source="test", entity="typed_keys")

    run(data)
    assert counts(run(data)) == (3, 0, 0, 3, 3, 0)
    if key_type != "text":  # a key the column refuses: that batch is staged whole, COPY says why
        bad = ("not a key", vendor_json.dumps({"key": "not a key"}))
        result = run([*data, bad])
        assert counts(result) == (3, 0, 0, 3, 0, 0) and result.quarantined == 1


def test_given_a_mirror_made_before_hashing_when_evolved_then_it_gains_the_hash(warehouse):
    with warehouse.connection() as conn:
        ensure_mirror(conn, SPEC.schema, SPEC.name, COLUMNS, "id")
        conn.execute("ALTER TABLE raw_supabase_main.prooftest_leads DROP COLUMN _row_hash")
        ensure_mirror(conn, SPEC.schema, SPEC.name, COLUMNS, "id")
    load(warehouse, [record(1)])
    assert all(v[3] for v in versions(warehouse).values())


def first_load(warehouse: WarehouseResource, data: Any, **options: Any) -> LoadResult:
    return warehouse.load(SPEC, data, source="test", entity="prooftest_leads", **options)


def names(warehouse: WarehouseResource) -> dict[int, str]:
    return dict(warehouse.fetch_all("SELECT id, name FROM raw_supabase_main.prooftest_leads"))


def test_given_an_empty_table_when_loaded_then_copied_straight_in_and_next_load_merges(mirror):
    result = first_load(mirror, iter([record(i) for i in range(1, 11)]), snapshot=True)
    assert counts(result) == (10, 10, 0, 0, 0, 0) and result.direct == 10
    stamps = {v[1] for v in versions(mirror).values()}
    assert len(stamps) == 1 and all(v[3] for v in versions(mirror).values())
    again = first_load(mirror, iter([record(i) for i in range(1, 12)]), snapshot=True)
    assert counts(again) == (11, 1, 0, 10, 10, 0) and again.direct == 0


@pytest.mark.parametrize(
    ("ids", "direct"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 5, 8, 9, 10], 4),  # twice in one batch: it and the next staged
        ([1, 2, 3, 4, 5, 6, 7, 8, 2, 9, 10], 8),  # again in a later batch than its first copy
    ],
)
def test_given_a_key_read_twice_in_a_first_load_when_loaded_then_its_last_copy_wins(
    mirror, monkeypatch, ids, direct
):
    monkeypatch.setattr(loader, "BATCH_ROWS", 4)
    seen: set[int] = set()
    data = []
    for i in ids:
        data.append(record(i, name="last" if i in seen else "n"))
        seen.add(i)
    result = first_load(mirror, iter(data))
    assert counts(result) == (11, 10, 0, 0, 0, 0) and result.direct == direct
    twice = next(i for i in ids if ids.count(i) == 2)
    assert names(mirror) == {i: f"{'last' if i == twice else 'n'}{i}" for i in range(1, 11)}


def test_given_a_first_load_when_rows_go_in_then_the_changes_lock_is_held(mirror):
    held: list[int] = []

    def rows() -> Iterator[tuple[Any, ...]]:
        yield record(1)
        held.append(mirror.fetch_all(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND mode = 'ShareLock' AND granted", (CHANGES_LOCK,))[0][0])  # fmt: skip

    first_load(mirror, rows())
    assert held == [1]


def test_given_a_first_load_failing_mid_stream_when_loaded_then_nothing_stored(mirror):
    def failing() -> Iterator[tuple[Any, ...]]:
        yield from (record(i) for i in range(1, 8))
        raise ConnectionError("vendor went away mid-scan")

    with pytest.raises(ConnectionError):
        first_load(mirror, failing(), new_cursor=lambda old: {"id": 7})
    assert names(mirror) == {}
    assert mirror.get_cursor("test", "prooftest_leads") is None

"""Raw assets of the three Supabase projects: one asset per contract entry.

Recipe per table: contract entry + the table's discovered shape → plan (key, cursor strategy,
canonical feeds) → the raw mirror evolves to the served columns and the staging view is
regenerated → scan from the cursor → rows the models cannot use go to quarantine → COPY + merge
with the cursor in one transaction → deletions marked → metadata saying what ran and why.
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from assets.contract import ReloadConfig, raw_asset, reload_since, run_source_step
from assets.metadata import table_metadata
from assets.progress import Progress
from contract.config import ContractError, TableEntry, load_contract
from contract.plan import TablePlan, entry_path, plan_table, where
from contract.records import CLOCK_MARGIN
from contract.staging import RowValues, infer_shape, raw_columns, view_sql
from resources.canonical import CANONICAL_TABLES, PII_COLUMNS, PROJECTS, CanonicalTable
from resources.raw_mirror import (
    MirrorChanges,
    StoredKeys,
    analyze,
    ensure_mirror,
    ensure_view,
    record_served,
)
from resources.supabase import (
    PROXY_BODY_BYTES,
    DigestUnavailable,
    Keyset,
    SchemaForbidden,
    SupabaseResource,
    TableReader,
    TableShape,
)
from resources.warehouse import Columns, Rejected, TableSpec, WarehouseResource

# Rows re-read behind the stored cursor on every run: a source transaction that commits late
# carries an updated_at older than rows we already saw. Re-reading them is a no-op merge.
OVERLAP = timedelta(minutes=10)
# Keys per `in.(...)` request: 100 quoted uuids keep its URL under 4 kB.
IN_LIST_KEYS = 100


@dataclass(frozen=True)
class Start:
    position: dict[str, Any] | None  # None: read the whole table
    why: str


def start_position(
    plan: TablePlan,
    cursor: dict[str, Any] | None,
    now: datetime,
    reload: datetime | str | None = None,
) -> Start:
    """Where this run's scan starts, given the stored cursor and the plan's strategy; a re-load
    starts at its day on a timestamp cursor, else (or with `all`) reads the whole table."""
    kind, column = plan.cursor.kind, plan.cursor.column
    if kind == "snapshot":
        return Start(None, "snapshot: the whole table")
    if reload == "all" or (reload is not None and kind != "timestamp"):
        return Start(None, "re-load: the whole table")
    if isinstance(reload, datetime):
        assert column is not None
        return Start({column: reload.isoformat(), plan.key.name: None}, f"re-load from {reload}")
    if not cursor or cursor.get("strategy") != kind or cursor.get("column") != column:
        return Start(None, "first read with this strategy: the whole table")
    if cursor.get("position") is None:  # every read so far found the table empty
        return Start(None, "no row read yet: the whole table")
    if kind == "key":
        full_read_at = datetime.fromisoformat(cursor["full_read_at"])
        if now - full_read_at >= timedelta(hours=plan.entry.reread_hours):
            return Start(None, f"periodic full re-read (every {plan.entry.reread_hours:g} h)")
        return Start({plan.key.name: cursor["position"]}, "new rows after the last key")
    assert column is not None
    since = datetime.fromisoformat(cursor["position"]) - OVERLAP
    return Start({column: since.isoformat(), plan.key.name: None}, f"rows changed since {since}")


class RecordStream:
    """Rows for the loader, remembering how far the scan got (the next cursor).

    `clock` is the source's own time (its `Date` header or its database's clock): a timestamp
    cursor never moves past it, so one row dated in the future (clock skew, bad data) cannot make
    the next runs skip the rows written until then. That row still loads, and is re-read (a
    no-op merge) until its time has come.
    """

    def __init__(
        self,
        plan: TablePlan,
        columns: list[tuple[str, str]],
        pages: Iterable[list[dict[str, Any]]],
        start: Start,
        now: datetime,
        clock: Callable[[], datetime],
    ) -> None:
        self.plan, self.columns, self.pages, self.start, self.now = plan, columns, pages, start, now
        self.clock = clock
        self.position: Any = None

    def __iter__(self) -> Iterator[Columns | Rejected]:
        track = self.plan.cursor.column or self.plan.key.name
        row_values = RowValues(self.columns, self.plan)
        for page in self.pages:
            yield from row_values.page(page)
            # the largest value seen: a full read's pages come in key order, range by range
            seen = [r.get(track) for r in page if isinstance(r, dict) and r.get(track) is not None]
            if self.position is not None:
                seen.append(self.position)
            if seen:
                self.position = self._largest(seen)

    def _largest(self, values: list[Any]) -> Any:
        """The largest cursor value: a timestamp by its time (its text may lack fractions)."""
        if self.plan.cursor.kind != "timestamp":
            return max(values)
        # a column's times are all zoned (compared as instants) or all wall times
        times = list(map(datetime.fromisoformat, map(str, values)))
        return values[times.index(max(times))]

    def cursor(self, old: dict[str, Any] | None) -> dict[str, Any]:
        kind, column = self.plan.cursor.kind, self.plan.cursor.column
        same = old is not None and old.get("strategy") == kind and old.get("column") == column
        position = self.position
        if kind == "timestamp" and position is not None:
            position = _no_later_than(
                position, self.clock() - CLOCK_MARGIN, self.plan.entry.timezone
            )
        full_read_at = self.now.isoformat()
        if old is not None and same:
            position = old["position"] if position is None else position
            if self.start.position is not None:
                full_read_at = old["full_read_at"]
        return {"strategy": kind, "column": column, "position": position,
                "full_read_at": full_read_at}  # fmt: skip


def _no_later_than(position: Any, limit: datetime, zone: str) -> Any:
    """A timestamp cursor value, or `limit` in the same form (with or without a zone) if later."""
    at = datetime.fromisoformat(str(position))
    naive = at.tzinfo is None
    if naive:  # a wall time in the contract's zone for this table
        at = at.replace(tzinfo=ZoneInfo(zone))
    if at <= limit:
        return position
    limit = limit.astimezone(ZoneInfo(zone) if naive else UTC)
    return (limit.replace(tzinfo=None) if naive else limit).isoformat()


def discover(api: TableReader, entry: TableEntry) -> TableShape:
    """The source table's shape; from served rows when the key may not read the schema."""
    try:
        shapes = api.describe()
    except SchemaForbidden:
        rows = next(iter(api.scan(entry.table, Keyset((entry.key or "id",)), None)), [])
        if not rows:
            raise
        return infer_shape(entry.table, entry.key or "id", rows)
    if entry.table not in shapes:
        raise ContractError(
            f"{where(entry)} is not served by the project (its tables: "
            f"{', '.join(sorted(shapes)) or 'none'}); fix `table:` under {entry_path(entry)} "
            "in the contract file."
        )
    return shapes[entry.table]


def _evolve_mirror(
    warehouse: WarehouseResource, plan: TablePlan
) -> tuple[MirrorChanges, list[tuple[str, str]]]:
    """Evolve the raw mirror, regenerate the staging view and record the shape, in one
    transaction; return the changes and the served columns with their stored types. Each step
    writes only what would differ: an hour of an unchanged table writes nothing here."""
    table = plan.entry.canonical
    indexed = [f.source.name for f in plan.feeds if f.canonical.indexed and f.source]
    with warehouse.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                     (f"load:{table.raw_schema}.{table.name}",))  # fmt: skip
        served = raw_columns(plan.shape)
        changes = ensure_mirror(conn, table.raw_schema, table.name, served, plan.key.name, indexed)
        ensure_view(conn, table.staging_schema, table.name, view_sql(plan, changes.stored))
        record_served(conn, table.source, table.name, plan.shape, plan_summary(plan))
    return changes, [(name, changes.stored[name]) for name, _ in served]


def plan_summary(plan: TablePlan) -> dict[str, Any]:
    return {
        "source_table": plan.entry.table,
        "key": f"{plan.key.name} ({plan.key.type})",
        "cursor": plan.cursor.kind + (f" on {plan.cursor.column}" if plan.cursor.column else ""),
        "cursor_reason": plan.cursor.reason,
        "feeds": {f.canonical.name: f.describe for f in plan.feeds},
        "unmapped": list(plan.unmapped),
    }


@dataclass(frozen=True)
class Prepared:
    """A table ready to load: its plan, the raw mirror's served columns (with their stored
    types) as the loader's spec, and what the mirror's schema evolution changed."""

    plan: TablePlan
    columns: list[tuple[str, str]]
    spec: TableSpec
    changes: MirrorChanges


def prepare_table(
    warehouse: WarehouseResource, api: TableReader, table: CanonicalTable
) -> Prepared:
    entry = load_contract().entry(table.name)
    plan = plan_table(entry, discover(api, entry))
    changes, columns = _evolve_mirror(warehouse, plan)
    names = (*(c for c, _ in columns), "_raw")
    types = (*(t for _, t in columns), "jsonb")
    spec = TableSpec(table.raw_schema, table.name, names, (plan.key.name,), types,
                     typed_from_raw=True)  # fmt: skip
    return Prepared(plan, columns, spec, changes)


def sync_table(
    warehouse: WarehouseResource,
    resource: SupabaseResource,
    table: CanonicalTable,
    reload: datetime | str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load what changed since the cursor (or since a re-load's day), then mark deletions;
    return the domain counts."""
    now = datetime.now(UTC)
    with resource.open() as api:
        ready = prepare_table(warehouse, api, table)
        plan, spec = ready.plan, ready.spec
        cursor = warehouse.get_cursor(table.source, table.name)
        start = start_position(plan, cursor, now, reload)
        clock = api.server_now
        if start.position is None:
            # key ranges side by side: a row updated during the read may be in a range already
            # read, so the cursor stays before the read began and the next run reads it again
            began = api.server_now()
            clock = lambda: began  # noqa: E731
            pages = api.scan_all(plan.entry.table, plan.keyset)
        else:
            pages = api.scan(plan.entry.table, plan.keyset, start.position)
        if log is not None:
            pages = _with_progress(pages, log, f"{table.source}.{table.name}")
        stream = RecordStream(plan, ready.columns, pages, start, now, clock)
        snapshot = plan.cursor.kind == "snapshot"
        result = warehouse.load(spec, stream, source=table.source, entity=table.name,
                                new_cursor=stream.cursor, snapshot=snapshot)  # fmt: skip
        if result.inserted > result.updated + result.unchanged:  # most rows new: a first load
            # statistics now, not at autovacuum's leisure: planned on an empty table's, the next
            # load's hash lookup scans the whole mirror for every batch of keys (a hash join)
            with warehouse.connection() as conn:
                analyze(conn, spec.schema, spec.name)
        requests_before, detection_started = api.stats.requests, time.perf_counter()
        gone = Deletions([], "none: a snapshot load marks what it did not see")
        if result.first:
            # the mirror holds only what was read just now: a row deleted during the read is
            # found by the next load, as one deleted just after it would be
            gone = Deletions([], "none: the first load into an empty mirror")
        elif not snapshot:  # a snapshot load marked what it did not see, in its transaction
            gone = find_deleted(api, warehouse, plan, spec)
            result.deleted = warehouse.mark_deleted(spec, gone.keys)
        detection = (api.stats.requests - requests_before, time.perf_counter() - detection_started)
    counts: dict[str, Any] = {
        **plan_summary(plan),
        "scan": start.why,
        "schema_changes": ready.changes.summary,
        "schema_inferred": plan.shape.inferred,
        "rows_read": result.rows_in + result.quarantined,
        "rows_inserted": result.inserted,
        "rows_updated": result.updated,
        "rows_unchanged": result.unchanged,
        "rows_skipped_by_hash": result.skipped,
        "rows_copied_direct": result.direct,
        "rows_quarantined": result.quarantined,
        "rows_deleted": result.deleted,
        "pages": api.stats.pages,
        "requests": api.stats.requests,
        "retries": api.stats.retries,
        "deletion_method": gone.method,
        "deletion_requests": detection[0],
        "deletion_seconds": round(detection[1], 3),
        "cursor_before": result.cursor_before or {},
        "cursor_after": result.cursor_after or {},
        "seconds": round(result.seconds, 3),
    }
    notes = [*result.notes, *([gone.note] if gone.note else [])]
    if notes:
        counts["notes"] = "; ".join(notes)
    return counts


def _with_progress(
    pages: Iterable[list[dict[str, Any]]], log: Callable[[str], None], what: str
) -> Iterator[list[dict[str, Any]]]:
    """Rows and rate at a steady interval (the total of a keyset scan is not known up front)."""
    progress = Progress(log, what, None, "rows")
    with progress.running():
        for page in pages:
            progress.advance(0, len(page))
            yield page


@dataclass
class _Range:
    """Keys in (lo, hi] (None: unbounded) and how many of them the source holds."""

    lo: Any
    hi: Any
    source: int
    sibling_differs: bool = False


# Key buckets per digest request: their bounds travel in its body (about 0.4 MB of uuids), their
# digests in its answer. At 1M rows and 0.1 % deleted, 1000 buckets of 1000 keys all but all
# differed and were cut finer round after round (13 requests, 112 s, each round scanning both
# sides); buckets of 100 keys leave about 100k keys to cut once.
DIGEST_BUCKETS = 10_000
# The most bytes of bounds a request carries, so that with the buckets it asks (up to about
# 120 kB of numbers) its body stays within what a proxy takes. A refine round's bounds are up
# to 2 × DIGEST_BUCKETS: as uuids about 0.78 MB, within it; longer text keys get fewer, wider
# buckets instead of a 413.
DIGEST_BODY_BYTES = PROXY_BODY_BYTES - 224 * 1024
# Keys the source answers per request for the buckets that differ (about 0.8 MB of uuids); more
# than that in differing buckets, and they are cut finer first (one request more, fewer bytes).
BUCKET_KEYS = 20_000
DIGESTS = "key digests"
COUNTS = "row counts over key ranges"


@dataclass(frozen=True)
class Deletions:
    """Keys the source no longer holds, how they were found, and why by the slow method."""

    keys: list[Any]
    method: str
    note: str | None = None


def find_deleted(
    api: TableReader, warehouse: WarehouseResource, plan: TablePlan, spec: TableSpec
) -> Deletions:
    """Keys live in the raw table that the source no longer holds, without reading every key:
    by digests of key buckets when the source computes them (its database on the direct path,
    the optional function through REST), else by counts over key ranges."""
    table, keyset = plan.entry.table, Keyset((plan.key.name,), plan.keyset.quoted)
    with warehouse.connection() as conn:
        stored = StoredKeys(conn, spec.schema, spec.name, plan.key.name)
        try:
            return Deletions(_by_digests(api, stored, table, keyset), DIGESTS)
        except DigestUnavailable as why:
            note = f"deletions found by {COUNTS}, not digests: {why}"
        conn.rollback()  # a refused query on the mirror's side leaves its transaction aborted
        return Deletions(_by_counts(api, stored, table, keyset), COUNTS, note)


def _by_digests(api: TableReader, stored: StoredKeys, table: str, keyset: Keyset) -> list[Any]:
    """The source's count and digest per bucket of about `step` stored keys (the bounds are the
    raw table's own keys, every step-th) against the raw table's; buckets that differ are cut
    finer while their keys would not fit one answer, then their keys are compared."""
    live = stored.count(None, None)
    if not live:
        return []
    step = -(-live // DIGEST_BUCKETS)
    bounds = _within_body(stored.every(step))
    while True:
        differ = _differing(api, stored, table, keyset, bounds)
        held = sum(differ.values())
        finer = -(-held // DIGEST_BUCKETS)
        if held <= BUCKET_KEYS or finer >= step:
            break
        step, bounds = finer, _within_body(stored.refine(bounds, sorted(differ), finer))
    missing: list[Any] = []
    for chunk in _chunks(differ, BUCKET_KEYS):
        served = api.bucket_keys(table, keyset, bounds, chunk)
        missing += [k for k in stored.bucket_keys(bounds, chunk) if str(k) not in served]
    return _confirmed_gone(api, table, keyset, missing)


def _within_body(bounds: list[str]) -> list[str]:
    """Every k-th bound, k the least that keeps them within DIGEST_BODY_BYTES as JSON (any
    sorted subset of bounds cuts valid buckets, only wider ones)."""
    size = sum(len(json.dumps(b)) + 1 for b in bounds)  # escaped: never fewer bytes than sent
    every = -(-size // DIGEST_BODY_BYTES)
    return bounds[every - 1 :: every] if every > 1 else bounds


def _differing(
    api: TableReader, stored: StoredKeys, table: str, keyset: Keyset, bounds: list[str]
) -> dict[int, int]:
    """The buckets holding stored keys whose count or digest the source does not match, and
    how many stored keys each holds (a bucket of the source's new rows alone has none to lose)."""
    theirs = api.key_digests(table, keyset, bounds)
    ours = stored.digests(bounds)
    return {b: rows for b, (rows, digest) in ours.items() if theirs.get(b) != (rows, digest)}


def _chunks(sizes: dict[int, int], most: int) -> Iterator[list[int]]:
    """The buckets in groups holding at most `most` keys (a bigger bucket alone)."""
    group: list[int] = []
    held = 0
    for bucket in sorted(sizes):
        if group and held + sizes[bucket] > most:
            yield group
            group, held = [], 0
        group.append(bucket)
        held += sizes[bucket]
    if group:
        yield group


def _by_counts(api: TableReader, stored: StoredKeys, table: str, keyset: Keyset) -> list[Any]:
    """The source's row count over a key range (one request) against the raw table's; a range
    whose counts agree is done, one that differs is halved at the raw table's median key, down
    to ranges of a page, whose keys are read. Where deletions are spread so thinly that both
    halves of a range keep differing and reading it costs at most twice its difference in
    pages, it is read at once (halving would cost more)."""
    page = getattr(getattr(api, "config", None), "page_size", 1000)
    gone: list[Any] = []
    pending = [_Range(None, None, api.count(table, keyset))]
    while pending:
        part = pending.pop()
        have = stored.count(part.lo, part.hi)
        differs = abs(have - part.source)
        if not differs:
            continue
        dense = part.sibling_differs and -(-have // page) <= 2 * differs
        if have <= page or dense:
            gone += _gone_in(api, stored, table, keyset, part)
            continue
        half = have // 2 + 1  # keys of the left half, (lo, mid]
        mid = stored.key_at(part.lo, part.hi, half - 1)
        left = api.count(table, keyset, part.lo, mid)
        both = left != half and part.source - left != have - half
        right = part.source - left
        pending += [_Range(part.lo, mid, left, both), _Range(mid, part.hi, right, both)]
    return gone


def _gone_in(
    api: TableReader, stored: StoredKeys, table: str, keyset: Keyset, part: _Range
) -> list[Any]:
    key = keyset.key
    # keys compared as the source writes them in JSON (a stored uuid is a UUID, served a str)
    served = {str(row[key]) for page in api.scan_range(table, keyset, part.lo, part.hi, key)
              for row in page}  # fmt: skip
    missing = [k for k in stored.keys(part.lo, part.hi) if str(k) not in served]
    return _confirmed_gone(api, table, keyset, missing)


def _confirmed_gone(api: TableReader, table: str, keyset: Keyset, missing: list[Any]) -> list[Any]:
    """Text keys are confirmed gone by an `in` request: a source that orders or compares text
    otherwise than we do can cost requests, never a row."""
    if not keyset.quoted or not missing:
        return missing
    key = keyset.key
    found: set[str] = set()
    for start in range(0, len(missing), IN_LIST_KEYS):
        chunk = missing[start : start + IN_LIST_KEYS]
        found |= {str(row[key]) for page in api.scan_keys(table, keyset, chunk) for row in page}
    return [k for k in missing if str(k) not in found]


def load_supabase_table(
    context: dg.AssetExecutionContext, table: CanonicalTable, config: ReloadConfig | None = None
) -> dg.MaterializeResult:
    warehouse: WarehouseResource = context.resources.warehouse
    reload = reload_since(config, f"Supabase {PROJECTS[table.project]}") if config else None
    counts = sync_table(
        warehouse, getattr(context.resources, table.source), table, reload, context.log.info
    )
    context.log.info(
        f"{table.source}.{table.name}: {counts['cursor']} ({counts['cursor_reason']}); "
        f"{counts['rows_read']} rows read, {counts['rows_inserted']} new, "
        f"{counts['rows_updated']} updated, {counts['rows_deleted']} deleted (by "
        f"{counts['deletion_method']}); "
        f"schema {counts['schema_changes']}"
    )
    counts["feeds"] = dg.MetadataValue.json(counts["feeds"])
    counts["unmapped"] = ", ".join(counts["unmapped"]) or "none"
    return dg.MaterializeResult(
        metadata=table_metadata(
            warehouse,
            table.raw_schema,
            table.name,
            hide=PII_COLUMNS,
            order_by="_loaded_at",
            counts=counts,
        )  # fmt: skip
    )


def build_supabase_asset(table: CanonicalTable) -> dg.AssetsDefinition:
    project = PROJECTS[table.project]

    @raw_asset(
        table.source,
        table.name,
        (
            f"Supabase {project}: {table.description}, mirrored as the source serves it "
            f"(the contract entry {table.name} maps it to the canonical columns of "
            f"{table.staging_schema}.{table.name}). Each run re-reads a short overlap behind "
            "its cursor and merges by key, so a re-run changes nothing."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, config: ReloadConfig) -> dg.MaterializeResult:
        return run_source_step(
            context, table.source, table.name, lambda: load_supabase_table(context, table, config)
        )

    return _asset


supabase_assets = [build_supabase_asset(table) for table in CANONICAL_TABLES]

"""Raw assets of the three Supabase projects: one asset per table, loaded incrementally by keyset.

Recipe per table: cursor → keyset scan page by page → validate each record → COPY + merge with the
cursor in one transaction → id-only scan marks hard deletes → metadata.
"""

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import orjson

from assets.contract import raw_asset, run_source_step
from assets.metadata import table_metadata
from assets.records import parse
from assets.supabase_tables import PII_COLUMNS, PROJECTS, SUPABASE_TABLES, SupabaseTable
from resources.supabase import BY_ID, Keyset, SupabaseResource, TableReader
from resources.warehouse import Rejected, WarehouseResource

# Rows re-read behind the stored cursor on every run: a source transaction that commits late
# carries an updated_at older than rows we already saw. Re-reading them is a no-op merge.
OVERLAP = timedelta(minutes=10)


def start_position(keyset: Keyset, cursor: dict[str, Any] | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    if not keyset.mutable:
        return {"id": cursor["id"]}
    since = datetime.fromisoformat(cursor["updated_at"]) - OVERLAP
    return {"updated_at": since.isoformat(), "id": 0}


class RecordStream:
    """Validated rows for the loader, remembering the keyset position of the last row read."""

    def __init__(self, table: SupabaseTable, pages: Iterable[list[dict[str, Any]]]) -> None:
        self.table = table
        self.pages = pages
        self.last: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...] | Rejected]:
        for page in self.pages:
            for record in page:
                yield self._row(record)
            self.last = {c: page[-1].get(c) for c in self.table.keyset.columns}

    def _row(self, record: dict[str, Any]) -> tuple[Any, ...] | Rejected:
        parsed = parse(self.table.model, record)
        if isinstance(parsed, Rejected):
            return parsed
        # a model's __dict__ holds its fields in declaration order: the spec's column order
        values = [
            orjson.dumps(v).decode() if isinstance(v, dict | list) else v
            for v in parsed.__dict__.values()
        ]
        return (*values, orjson.dumps(record).decode())

    def cursor(self, old: dict[str, Any] | None) -> dict[str, Any] | None:
        return self.last or old


def sync_table(
    warehouse: WarehouseResource, resource: SupabaseResource, table: SupabaseTable
) -> dict[str, Any]:
    """Load what changed since the cursor, then mark hard deletes; return the domain counts."""
    spec = table.spec
    start = start_position(table.keyset, warehouse.get_cursor(table.source, table.name))
    with resource.open() as api:
        stream = RecordStream(table, api.scan(table.name, table.keyset, start))
        result = warehouse.load(
            spec, stream, source=table.source, entity=table.name, new_cursor=stream.cursor
        )
        deleted = warehouse.mark_deleted(spec, _live_ids(api, table))
    counts: dict[str, Any] = {
        "rows_read": result.rows_in + result.quarantined,
        "rows_inserted": result.inserted,
        "rows_updated": result.updated,
        "rows_unchanged": result.unchanged,
        "rows_quarantined": result.quarantined,
        "rows_deleted": deleted,
        "pages": api.stats.pages,
        "requests": api.stats.requests,
        "retries": api.stats.retries,
        "cursor_before": result.cursor_before or {},
        "cursor_after": result.cursor_after or {},
        "seconds": round(result.seconds, 3),
    }
    if result.notes:
        counts["notes"] = "; ".join(result.notes)
    return counts


def load_supabase_table(
    context: dg.AssetExecutionContext, table: SupabaseTable
) -> dg.MaterializeResult:
    warehouse: WarehouseResource = context.resources.warehouse
    counts = sync_table(warehouse, getattr(context.resources, table.source), table)
    context.log.info(
        f"{table.source}.{table.name}: {counts['rows_read']} rows read, "
        f"{counts['rows_inserted']} new, {counts['rows_updated']} updated, "
        f"{counts['rows_deleted']} deleted, cursor {counts['cursor_after']}"
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            warehouse,
            table.spec.schema,
            table.spec.name,
            hide=PII_COLUMNS,
            order_by=", ".join(table.keyset.columns[::-1]),
            counts=counts,
        )
    )


def _live_ids(api: TableReader, table: SupabaseTable) -> Iterator[list[int]]:
    for page in api.scan(table.name, BY_ID, None, columns="id"):
        yield [row["id"] for row in page]


def build_supabase_asset(table: SupabaseTable) -> dg.AssetsDefinition:
    project = PROJECTS[table.project]

    @raw_asset(
        table.source,
        table.name,
        (
            f"Supabase {project} `{table.name}` as received, typed, with hard deletes marked. "
            "Each run re-reads a short overlap behind its cursor and merges by id, so a "
            "re-run changes nothing."
        ),
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return run_source_step(
            context, table.source, table.name, lambda: load_supabase_table(context, table)
        )

    return _asset


supabase_assets = [build_supabase_asset(table) for table in SUPABASE_TABLES]

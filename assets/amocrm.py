"""Raw AmoCRM assets: account settings, pipelines and statuses (reloaded whole each run), lead
events (status moves, deletions) and leads (incremental by updated_at).

Leads are read in the window [cursor − overlap, now − lag]: the overlap re-reads leads whose
update landed late, the lag leaves the current second alone; both re-reads merge by id, so a
re-run changes nothing. Deleted leads vanish from /leads; the `lead_deleted` events mark them.
"""

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import dagster as dg

from assets.contract import (
    ReloadConfig,
    raw_asset,
    raw_multi_asset,
    raw_spec,
    reload_since,
    run_source_step,
)
from assets.metadata import table_metadata
from assets.progress import timeline_progress
from contract.amocrm_records import (
    AmoAccount,
    AmoEvent,
    AmoLead,
    AmoPipeline,
    AmoStatus,
    utm_values,
)
from contract.config import load_contract
from contract.records import from_unix, parse, unix_not_after
from resources import vendor_json
from resources.amocrm import EVENTS_LIMIT, AmoCrmClient, AmoCrmResource
from resources.warehouse import LoadResult, Rejected, TableSpec, WarehouseResource

SOURCE = "amocrm"
OVERLAP_SECONDS = 15 * 60
LAG_SECONDS = 60

LEADS = TableSpec(
    "raw_amocrm",
    "leads",
    ("id", "name", "price", "pipeline_id", "status_id", "responsible_user_id", "loss_reason_id",
     "created_at", "updated_at", "closed_at", "is_deleted", "utm_source", "utm_medium",
     "utm_campaign", "utm_content", "utm_term", "custom_fields", "_raw"),
)  # fmt: skip
EVENTS = TableSpec(
    "raw_amocrm",
    "lead_events",
    ("id", "type", "entity_id", "created_at", "value_before", "value_after", "_raw"),
)
PIPELINES = TableSpec(
    "raw_amocrm", "pipelines", ("id", "name", "sort", "is_main", "is_archive", "_raw")
)
STATUSES = TableSpec(
    "raw_amocrm",
    "statuses",
    ("pipeline_id", "id", "name", "sort", "type", "is_editable", "_raw"),
    key=("pipeline_id", "id"),
)
ACCOUNT = TableSpec(
    "raw_amocrm", "account", ("id", "name", "subdomain", "timezone", "currency", "_raw")
)


def _json(value: Any) -> str | None:
    return None if value is None else vendor_json.dumps(value)


class LeadRows:
    """Lead pages → loader rows; remembers the largest updated_at seen (the next cursor)."""

    def __init__(
        self,
        pages: Iterable[list[dict[str, Any]]],
        utm_fields: dict[str, int | str],
        since: int,
        until: int,
    ) -> None:
        self.pages = pages
        self.utm_fields = utm_fields
        self.since = since
        self.until = until  # the window's end: the cursor never passes it
        self.max_updated: int | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...] | Rejected]:
        for page in self.pages:
            for record in page:
                lead = parse(AmoLead, record)
                if isinstance(lead, Rejected):
                    yield lead
                    continue
                self.max_updated = max(self.max_updated or 0, lead.updated_at)
                custom = [f.model_dump() for f in lead.custom_fields_values or []] or None
                yield (
                    lead.id, lead.name, lead.price, lead.pipeline_id, lead.status_id,
                    lead.responsible_user_id, lead.loss_reason_id, from_unix(lead.created_at),
                    from_unix(lead.updated_at), from_unix(lead.closed_at), lead.is_deleted,
                    *utm_values(lead.custom_fields_values, self.utm_fields),
                    _json(custom), _json(record),
                )  # fmt: skip

    def cursor(self, old: dict[str, Any] | None) -> dict[str, Any] | None:
        # a re-load from an old day must not move the cursor back
        newest = max(min(self.max_updated or 0, self.until), int((old or {}).get("updated_at", 0)))
        return {"updated_at": newest} if newest else old


def _event_rows(
    pages: Iterable[list[dict[str, Any]]], seen: list[int]
) -> Iterator[tuple[Any, ...] | Rejected]:
    for page in pages:
        for record in page:
            event = parse(AmoEvent, record)
            if isinstance(event, Rejected):
                yield event
                continue
            seen.append(event.created_at)
            yield (
                event.id, event.type, event.entity_id, from_unix(event.created_at),
                _json(event.value_before), _json(event.value_after), _json(record),
            )  # fmt: skip


def _counts(result: LoadResult, client: AmoCrmClient) -> dict[str, Any]:
    return {
        "rows_read": result.rows_in + result.quarantined,
        "rows_inserted": result.inserted,
        "rows_updated": result.updated,
        "rows_unchanged": result.unchanged,
        "rows_skipped_by_hash": result.skipped,
        "rows_quarantined": result.quarantined,
        "rows_deleted": result.deleted,
        "requests": client.stats.requests,
        "pages": client.stats.pages,
        "throttled_429": client.stats.throttled,
        "retries": client.stats.retries,
        "token_refreshes": client.stats.refreshes,
        "cursor_before": result.cursor_before or {},
        "cursor_after": result.cursor_after or {},
        "notes": "; ".join(result.notes),
    }


def _client(context: dg.AssetExecutionContext) -> AmoCrmClient:
    warehouse: WarehouseResource = context.resources.warehouse
    resource: AmoCrmResource = context.resources.amocrm
    return resource.open(warehouse, warehouse.last_success(SOURCE))


def sync_reference(warehouse: WarehouseResource, client: AmoCrmClient) -> dict[str, LoadResult]:
    """Account settings, pipelines and statuses: small, so reloaded whole every run."""
    account = client.get("/api/v4/account", {"with": "datetime_settings"}) or {}
    tz = account.get("_embedded", {}).get("datetime_settings", {}).get("timezone")
    parsed = parse(AmoAccount, account)
    account_rows: list[Any] = [parsed]
    if isinstance(parsed, AmoAccount):
        account_rows = [
            (parsed.id, parsed.name, parsed.subdomain, tz, parsed.currency, _json(account))
        ]
    pipelines = client.pipelines()
    pipeline_rows: list[Any] = []
    status_rows: list[Any] = []
    for record in pipelines:
        pipeline = parse(AmoPipeline, record)
        if isinstance(pipeline, AmoPipeline):
            raw = {k: v for k, v in record.items() if k != "_embedded"}
            pipeline_rows.append(
                (pipeline.id, pipeline.name, pipeline.sort, pipeline.is_main,
                 pipeline.is_archive, _json(raw))
            )  # fmt: skip
        else:
            pipeline_rows.append(pipeline)
        for status_record in record.get("_embedded", {}).get("statuses", []):
            status = parse(AmoStatus, {"pipeline_id": record.get("id"), **status_record})
            if isinstance(status, Rejected) and status.key is not None:
                status.key = f"{record.get('id')}/{status.key}"  # the table's key, as stored
            status_rows.append(
                status
                if not isinstance(status, AmoStatus)
                else (status.pipeline_id, status.id, status.name, status.sort, status.type,
                      status.is_editable, _json(status_record))
            )  # fmt: skip
    return {
        spec.name: warehouse.load(spec, rows, source=SOURCE, entity=spec.name, snapshot=True)
        for spec, rows in (
            (ACCOUNT, account_rows),
            (PIPELINES, pipeline_rows),
            (STATUSES, status_rows),
        )
    }


def _reload_start(reload: datetime | None | str, cursor_seconds: int) -> int:
    """Where a read starts: the re-load's instant (0 for everything), else the cursor minus
    the overlap."""
    if reload == "all":
        return 0
    if isinstance(reload, datetime):
        return int(reload.timestamp())
    return max(0, cursor_seconds - OVERLAP_SECONDS)


def sync_events(
    warehouse: WarehouseResource, client: AmoCrmClient, reload: datetime | None | str = None
) -> LoadResult:
    seen: list[int] = []

    def window(cursor: dict[str, Any] | None) -> Iterator[tuple[Any, ...] | Rejected]:
        # from the cursor as the loader holds it: a load that waited reads only what is new
        since = _reload_start(reload, int((cursor or {}).get("created_at", 0)))
        pages = client.pages(
            "/api/v4/events",
            "events",
            {
                "filter[type][]": ["lead_status_changed", "lead_deleted"],
                "filter[created_at][from]": since,
                "limit": EVENTS_LIMIT,
            },
        )
        return _event_rows(pages, seen)

    return warehouse.load(
        EVENTS,
        window,
        source=SOURCE,
        entity="lead_events",
        new_cursor=lambda old: (
            {
                "created_at": max(
                    unix_not_after(max(seen), client.server_now()),
                    int((old or {}).get("created_at", 0)),
                )
            }
            if seen
            else old
        ),  # fmt: skip
    )


def sync_leads(
    warehouse: WarehouseResource,
    client: AmoCrmClient,
    utm_fields: dict[str, int | str],
    reload: datetime | None | str = None,
    log: Callable[[str], None] | None = None,
) -> tuple[LoadResult, int]:
    read: list[LeadRows] = []

    def window(cursor: dict[str, Any] | None) -> LeadRows:
        # from the cursor as the loader holds it: a load that waited reads only what is new
        since = _reload_start(reload, int((cursor or {}).get("updated_at", 0)))
        until = int(client.server_now().timestamp()) - LAG_SECONDS
        pages = client.leads_updated(since, until)
        if log is not None:
            pages = timeline_progress(pages, log, "AmoCRM leads", since, until, "updated_at")
        read.append(LeadRows(pages, utm_fields, since, until))
        return read[0]

    result = warehouse.load(
        LEADS, window, source=SOURCE, entity="leads", new_cursor=lambda old: read[0].cursor(old)
    )
    if read[0].max_updated is None:
        result.notes += _empty_answer(warehouse, read[0].since, read[0].until)
    return result, warehouse.apply_change("ops/amocrm_deleted_leads")


def _empty_answer(warehouse: WarehouseResource, since: int, until: int) -> list[str]:
    """AmoCRM's 204 means no lead matched, yet a window from the cursor always holds the lead
    at the cursor: an empty answer where stored, undeleted leads say there are rows is worth a
    warning (amocrm.md: 204 is not an error, so it never fails the run)."""
    expected = warehouse.fetch_all(
        "SELECT count(*) FROM raw_amocrm.leads l WHERE l._deleted_at IS NULL"
        " AND l.updated_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)"
        " AND NOT EXISTS (SELECT 1 FROM raw_amocrm.lead_events e"
        "  WHERE e.type = 'lead_deleted' AND e.entity_id = l.id)",
        (since, until),
    )[0][0]
    if not expected:
        return []
    # this load is logged already: the loads without a row since the last one that had rows
    runs = warehouse.fetch_all(
        "SELECT count(*) FROM ops.load_log WHERE source = %(s)s AND entity = 'leads'"
        " AND rows_in = 0 AND started_at > coalesce((SELECT max(started_at) FROM ops.load_log"
        "  WHERE source = %(s)s AND entity = 'leads' AND rows_in > 0), '-infinity')",
        {"s": SOURCE},
    )[0][0]
    span = f"{from_unix(since):%Y-%m-%d %H:%M} to {from_unix(until):%Y-%m-%d %H:%M} UTC"
    return [
        f"AmoCRM answered no leads (HTTP 204) for updated_at {span}, where {expected} "
        f"leads stored here were last updated and none was deleted ({runs} leads loads in a "
        "row without a row): it may be answering empty pages; if this repeats, check that "
        "the integration still has access to the account's leads in AmoCRM."
    ]


REFERENCE_SPECS = [
    raw_spec(SOURCE, spec.name, description)
    for spec, description in (
        (ACCOUNT, "AmoCRM account settings, its time zone included. Reloaded whole each run."),
        (PIPELINES, "AmoCRM pipelines. Reloaded whole each run; removed ones are marked."),
        (STATUSES, "AmoCRM statuses per pipeline (142 won, 143 lost). Reloaded whole each run."),
    )
]


@raw_multi_asset(SOURCE, "raw_amocrm_reference", REFERENCE_SPECS)
def amocrm_reference(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    warehouse: WarehouseResource = context.resources.warehouse

    def step() -> dict[str, dict[str, Any]]:
        with _client(context) as client:
            results = sync_reference(warehouse, client)
            return {name: _counts(result, client) for name, result in results.items()}

    counts = run_source_step(context, SOURCE, "reference", step)
    for spec in (ACCOUNT, PIPELINES, STATUSES):
        yield dg.MaterializeResult(
            asset_key=["raw_amocrm", spec.name],
            metadata=table_metadata(warehouse, spec.schema, spec.name, counts=counts[spec.name]),
        )


@raw_asset(
    SOURCE,
    "lead_events",
    (
        "AmoCRM lead events: status changes and deletions, incremental by created_at with an "
        "overlap; events merge by id, so a re-run changes nothing."
    ),
)
def amocrm_lead_events(
    context: dg.AssetExecutionContext, config: ReloadConfig
) -> dg.MaterializeResult:
    warehouse: WarehouseResource = context.resources.warehouse

    def step() -> dict[str, Any]:
        reload = reload_since(config, "AmoCRM")
        with _client(context) as client:
            return _counts(sync_events(warehouse, client, reload), client)

    counts = run_source_step(context, SOURCE, "lead_events", step)
    return dg.MaterializeResult(
        metadata=table_metadata(
            warehouse, EVENTS.schema, EVENTS.name, order_by="created_at", counts=counts
        )
    )


@raw_asset(
    SOURCE,
    "leads",
    deps=[amocrm_lead_events],
    description=(
        "AmoCRM leads with UTM from custom fields, incremental by updated_at in the window "
        "[cursor − 15 min, now − 1 min]; leads merge by id, so a re-run changes nothing. "
        "Deleted leads are marked from the lead_deleted events."
    ),
)
def amocrm_leads(context: dg.AssetExecutionContext, config: ReloadConfig) -> dg.MaterializeResult:
    warehouse: WarehouseResource = context.resources.warehouse

    def step() -> dict[str, Any]:
        # read inside the step: a contract mistake fails this asset with its sentence, recorded
        utm_fields = load_contract().amocrm.utm_fields
        reload = reload_since(config, "AmoCRM")
        if reload is not None:
            context.log.info(f"AmoCRM leads: re-load from {reload}")
        with _client(context) as client:
            result, deleted = sync_leads(warehouse, client, utm_fields, reload, context.log.info)
            for note in result.notes:
                context.log.warning(note)
            counts = _counts(result, client)
            counts["rows_deleted"] = deleted
            return counts

    counts = run_source_step(context, SOURCE, "leads", step)
    return dg.MaterializeResult(
        metadata=table_metadata(
            warehouse, LEADS.schema, LEADS.name, order_by="updated_at", counts=counts
        )
    )


amocrm_assets = [amocrm_reference, amocrm_lead_events, amocrm_leads]

"""Replaying a source's quarantined records once their cause is fixed (a contract mapping, a
model): `make replay SOURCE=...` (`python -m commands.replay replay SOURCE`) runs it.

Each quarantined record goes through the very path a load takes: the source's validation (the
contract's plan for a Supabase table, the pydantic records of AmoCRM and Facebook), then the
loader's COPY and merge by key (no cursor moves). A record that now passes is merged into raw
and its quarantine row is deleted; one that still fails stays, with the reason it fails for
now. Then core and marts rebuild the days whose rows changed. Re-running it changes nothing.

Replayed: every Supabase table, AmoCRM leads and lead events, Facebook insights and objects;
AmoCRM's account, pipelines and statuses are whole-table reloads: the next run re-reads them.
Exit codes: 0 done, 1 records still quarantined or a run failed, 2 a configuration error.
"""

import sys
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from resources import vendor_json
from resources.warehouse import Columns, Rejected, TableSpec, WarehouseResource

Rows = Iterable[tuple[Any, ...] | Columns | Rejected]


@dataclass(frozen=True)
class Replayer:
    """How one entity's records become loader rows again."""

    spec: TableSpec
    rows: Callable[[list[Any]], Rows]


@dataclass
class Replayed:
    entity: str
    records: int
    loaded: int = 0
    still_quarantined: int = 0
    unsupported: bool = False


def quarantined(warehouse: WarehouseResource, source: str) -> dict[str, list[tuple[int, Any]]]:
    """The source's quarantined records per entity, as (id, payload as the vendor sent it)."""
    found: dict[str, list[tuple[int, Any]]] = {}
    for qid, entity, text in warehouse.fetch_all(
        "SELECT id, entity, coalesce(record::text, record_text) FROM ops.quarantine"
        " WHERE source = %s ORDER BY entity, id",
        (source,),
    ):
        found.setdefault(entity, []).append((qid, vendor_json.loads(text)))
    return found


def replay(warehouse: WarehouseResource, source: str, resources: dict[str, Any]) -> list[Replayed]:
    """Re-load `source`'s quarantined records (see the module's docstring)."""
    started = warehouse.fetch_all("SELECT clock_timestamp()")[0][0]
    outcome = []
    with ExitStack() as stack:
        for entity, records in quarantined(warehouse, source).items():
            replayer = _replayer(source, entity, resources, stack, warehouse)
            done = Replayed(entity, len(records))
            outcome.append(done)
            if replayer is None:
                done.unsupported = True
                continue
            result = warehouse.load(replayer.spec, replayer.rows([r for _, r in records]),
                                    source=source, entity=entity)  # fmt: skip
            done.loaded, done.still_quarantined = result.rows_in, result.quarantined
            _forget(warehouse, [qid for qid, _ in records], started)
    return outcome


def _forget(warehouse: WarehouseResource, ids: list[int], started: datetime) -> None:
    """Delete the replayed rows; a record that failed again was refreshed by the load (or is a
    new row, with its new reason) and stays."""
    with warehouse.connection() as conn:
        conn.execute(
            "DELETE FROM ops.quarantine WHERE id = ANY(%s) AND quarantined_at < %s",
            (ids, started),
        )


def _replayer(
    source: str,
    entity: str,
    resources: dict[str, Any],
    stack: ExitStack,
    warehouse: WarehouseResource,
) -> Replayer | None:
    if source.startswith("supabase_"):
        return _supabase(source, entity, resources[source], stack, warehouse)
    if source == "amocrm":
        return _amocrm(entity)
    return _facebook(entity, warehouse)


def _supabase(
    source: str, entity: str, resource: Any, stack: ExitStack, warehouse: WarehouseResource
) -> Replayer | None:
    from assets.supabase import RecordStream, Start, prepare_table
    from resources.canonical import CANONICAL_TABLES

    table = next((t for t in CANONICAL_TABLES if (t.source, t.name) == (source, entity)), None)
    if table is None:
        return None
    api = stack.enter_context(resource.open())
    # the contract as it is now, and the raw mirror and staging view regenerated from it
    ready = prepare_table(warehouse, api, table)
    now = datetime.now().astimezone()

    def rows(records: list[Any]) -> Rows:
        start = Start(None, "quarantine replay")
        return RecordStream(ready.plan, ready.columns, [records], start, now, api.server_now)

    return Replayer(ready.spec, rows)


def _amocrm(entity: str) -> Replayer | None:
    from assets.amocrm import EVENTS, LEADS, LeadRows, _event_rows
    from contract.config import load_contract

    if entity == "leads":
        utm_fields = load_contract().amocrm.utm_fields
        return Replayer(LEADS, lambda records: LeadRows([records], utm_fields, 0, sys.maxsize))
    if entity == "lead_events":
        return Replayer(EVENTS, lambda records: _event_rows([records], []))
    return None


def _facebook(entity: str, warehouse: WarehouseResource) -> Replayer | None:
    from assets.facebook import INSIGHTS, OBJECTS, AccountInfo, insight_rows, object_rows

    kind, _, account = entity.partition(":")
    if kind == "insights":
        stored = warehouse.fetch_all(
            "SELECT id, name, currency, timezone_name, account_status"
            " FROM raw_facebook.ad_accounts WHERE id = %s",
            (account,),
        )
        if not stored:
            return None
        info = AccountInfo(**dict(zip(AccountInfo.model_fields, stored[0], strict=True)))
        return Replayer(INSIGHTS, lambda records: insight_rows([records], info))
    if kind in OBJECTS:
        spec = OBJECTS[kind]
        return Replayer(spec, lambda records: object_rows([records], account, spec, []))
    return None

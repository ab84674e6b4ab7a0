"""The contract every raw asset shares: what it declares (spec, resources, retries) and how its
step succeeds or fails (every attempt recorded, errors reach the UI as one line).

Transient errors (after the client's own retries) may be retried by Dagster with backoff; terminal
ones (bad key, missing variable, unpaid subscription) are not, because only a person can fix them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import dagster as dg

from assets.metadata import table_metadata
from resources.errors import SourceError
from resources.settings import reporting_tz
from resources.warehouse import WarehouseResource

T = TypeVar("T")
OWNERS = ["team:data"]
SOURCE_FRESHNESS = dg.AssetKey(["marts", "source_freshness"])
# Called with the step's context and its source after a source's step failed: definitions.py
# adds the checks' evaluation of the credential and vendor diagnostics (Dagster skips the checks
# of a failed step, so the UI would show no reason), keeping the checks downstream of this module.
FailureListener = Callable[[dg.AssetExecutionContext, str], None]
FAILURE_LISTENERS: list[FailureListener] = []
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class ReloadConfig(dg.Config):
    """Launchpad form of a re-load: re-read the source from a day (YYYY-MM-DD, midnight in the
    reporting zone) or `all`, instead of from the cursor. Rows merge by key, so a re-load never
    duplicates, the cursor never moves back, and the models rebuild only the days whose rows
    changed (their `_loaded_at` moves). Empty: the usual incremental read."""

    reload_from: str | None = None


def reload_since(config: ReloadConfig, source: str) -> datetime | None | Literal["all"]:
    """The instant a re-load starts at ("all": the whole source; None: no re-load)."""
    value = (config.reload_from or "").strip()
    if not value:
        return None
    if value.lower() == "all":
        return "all"
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise SourceError(
            source,
            f"{source}: reload_from must be a day (YYYY-MM-DD) or 'all' (got {value!r}).",
        ) from None
    return datetime.combine(day, time(), ZoneInfo(reporting_tz()))


def raw_spec(source: str, name: str, description: str) -> dg.AssetSpec:
    """What every raw asset declares alike: `raw_<source>.<name>`, its source's group (the run
    tag the run queue limits per source), kinds, owners."""
    return dg.AssetSpec(
        key=[f"raw_{source}", name],
        group_name=source,
        kinds={source.split("_")[0], "postgres"},
        owners=OWNERS,
        tags={"source": source},
        description=description,
    )


def raw_asset(source: str, name: str, description: str, **extra: Any) -> Any:
    """`@dg.asset` for one raw table: the shared spec, the warehouse and the source's resource
    (keyed by the source's name), retries on transient errors only."""
    spec = raw_spec(source, name, description)
    return dg.asset(
        key=spec.key,
        group_name=spec.group_name,
        kinds=spec.kinds,
        owners=spec.owners,
        tags=spec.tags,
        description=description,
        required_resource_keys={"warehouse", source},
        retry_policy=TRANSIENT_RETRY,
        **extra,
    )


def raw_multi_asset(source: str, name: str, specs: list[dg.AssetSpec], **extra: Any) -> Any:
    """`@dg.multi_asset` for raw tables one vendor call fills together."""
    return dg.multi_asset(
        specs=specs,
        required_resource_keys={"warehouse", source},
        retry_policy=TRANSIENT_RETRY,
        name=name,
        **extra,
    )


def run_source_step(
    context: dg.AssetExecutionContext, source: str, entity: str, step: Callable[[], T]
) -> T:
    warehouse: WarehouseResource = context.resources.warehouse
    try:
        result = step()
    except SourceError as exc:
        warehouse.record_attempt(source, entity, error=exc.message, run_id=context.run.run_id)
        # the dashboard learns of a stale source now, not when the next model rebuild runs
        report_freshness(context, warehouse)
        for listener in FAILURE_LISTENERS:
            listener(context, source)
        context.log.error(exc.message)
        # `from None`: the client library's traceback says nothing the message doesn't
        raise dg.Failure(
            description=exc.message,
            metadata={"source": source, "entity": entity, "transient": exc.transient},
            allow_retries=exc.transient,
        ) from None
    warehouse.record_attempt(source, entity, run_id=context.run.run_id)
    report_freshness(context, warehouse)
    return result


def report_freshness(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
    """The one writer of marts.source_freshness (it reads ops.source_attempts, which changes only
    here): rebuild it after every load attempt and record it as materialized with its new rows,
    so its preview in the UI is the state the table holds, a failed attempt included."""
    warehouse.run_model("marts.source_freshness")
    context.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=SOURCE_FRESHNESS,
            description=f"after a load attempt in run {context.run.run_id}",
            metadata=table_metadata(warehouse, "marts", "source_freshness"),
        )
    )

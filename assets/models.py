"""Thin assets over the SQL models of `core` and `marts`: each rebuilds one table from its file.

They carry `AutomationCondition.eager()`: the hourly schedule loads each source in its own run,
and these rebuild whenever any upstream source lands, using the last good rows of a source that
failed. One vendor outage leaves only its own branch stale; the marts keep serving.
"""

from collections.abc import Sequence

import dagster as dg

from assets.failures import OWNERS
from assets.metadata import table_metadata
from resources.settings import reporting_tz
from resources.warehouse import WarehouseResource


def build_model_asset(
    table: str, deps: Sequence[dg.AssetKey | str], description: str
) -> dg.AssetsDefinition:
    schema, name = table.split(".")

    @dg.asset(
        key=[schema, name],
        deps=deps,
        group_name=schema,
        kinds={"postgres", "sql"},
        owners=OWNERS,
        automation_condition=dg.AutomationCondition.eager(),
        description=description,
    )
    def _model(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        rows = warehouse.run_model(table, {"tz": reporting_tz()})
        context.log.info(f"{table}: rebuilt with {rows} rows")
        return dg.MaterializeResult(metadata=table_metadata(warehouse, schema, name))

    return _model


def key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


core_leads = build_model_asset(
    "core.leads",
    [
        key("raw_supabase_main", "landing_leads"),
        key("raw_supabase_main", "prooftest_leads"),
        key("raw_supabase_tripwire", "tripwire_users"),
    ],
    "One row per lead across landing, ProofTest (flagged test) and Tripwire, with its reporting "
    "day. Rebuilt whole in one transaction: re-running gives the same table.",
)
marts_leads_total = build_model_asset(
    "marts.leads_total",
    [key("core", "leads")],
    "Dashboard: leads and test leads per reporting day (replaces GET /leads/total).",
)

model_assets = [core_leads, marts_leads_total]

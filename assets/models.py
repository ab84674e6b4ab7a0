"""Thin assets over the SQL models of `core` and `marts`: each rebuilds one table from its file.

They carry `AutomationCondition.eager()`: the hourly schedule loads each source in its own run,
and these rebuild whenever any upstream source lands, using the last good rows of a source that
failed. One vendor outage leaves only its own branch stale; the marts keep serving.
"""

import dagster as dg
from psycopg import sql

from assets.contract import OWNERS
from assets.facebook import INSIGHT_SPECS
from assets.metadata import table_metadata
from assets.sources import RAW_KEYS
from contract.model_params import model_params
from resources.model_inputs import declared_inputs, raw_table
from resources.warehouse import WarehouseResource

# Facebook insights are daily partitions reaching back years, most of them never loaded; plain
# eager() waits for every upstream partition to exist ("any dep missing") and would never
# rebuild a model that reads them. Missing is judged on the unpartitioned sources only; a
# newly loaded insights partition still counts as an update.
PARTITIONED_RAW = dg.AssetSelection.assets(*(spec.key for spec in INSIGHT_SPECS))
MODEL_AUTOMATION = dg.AutomationCondition.eager().replace(
    "any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(PARTITIONED_RAW)
)


class ModelConfig(dg.Config):
    full_rebuild: bool = False  # recompute every day, not only the days raw changes touched


# The column each model's rows are rebuilt by when only some days changed (None: always whole).
# marts.source_freshness is built by its one writer after every load attempt
# (assets/contract.py's report_freshness), so no asset here rebuilds it.
DAY_COLUMNS: dict[str, str | None] = {
    "marts.source_freshness": None,
    "core.leads": "report_day",
    "core.sales": "report_day",
    "core.ad_spend_daily": "date",
    "marts.leads_total": "day",
    "marts.leads_by_funnel": "day",
    "marts.sales_total": "day",
    "marts.targetologist_daily": "day",
    "marts.leads_by_targetologist": "day",
    "marts.sales_by_targetologist": "day",
}


def input_keys(table: str) -> list[dg.AssetKey]:
    """The assets `table` is built from: its declared inputs (`-- reads:` in its SQL), a staging
    view standing for its raw table and ops.source_attempts for every raw asset (each writes it)."""
    keys: list[dg.AssetKey] = []
    for relation in declared_inputs(table):
        if relation == "ops.source_attempts":
            keys += RAW_KEYS
        else:
            keys.append(dg.AssetKey(raw_table(relation).split(".")))
    return keys


UNCHANGED = "No day rebuilt: no input changed since the last build, whose rows stand."


def _newest(table: str) -> str:
    """The preview's order: the latest days first (the day column leads an index), else the
    first column."""
    day_column = DAY_COLUMNS[table]
    return sql.Identifier(day_column).as_string() if day_column else "1"


def build_model_asset(table: str, description: str) -> dg.AssetsDefinition:
    schema, name = table.split(".")

    @dg.asset(
        key=[schema, name],
        deps=input_keys(table),
        group_name=schema,
        kinds={"postgres", "sql"},
        owners=OWNERS,
        automation_condition=MODEL_AUTOMATION,
        description=description,
    )
    def _model(warehouse: WarehouseResource, config: ModelConfig) -> dg.MaterializeResult:
        build = warehouse.run_model(
            table,
            model_params(warehouse, table),
            day_column=DAY_COLUMNS[table],
            full=config.full_rebuild,
        )
        # what was rebuilt is the materialization's metadata; a log line would be one more
        # event write per model and run
        days = "all days" if build.days_rebuilt is None else f"{build.days_rebuilt} days"
        counts = {"rows_written": build.rows_written, "rebuilt": days}
        # the count comes from the build's own statements; rows are read for the preview only
        # when some were rewritten (at two years, a count(*) and a sort per model and hour)
        unchanged = UNCHANGED if build.days_rebuilt == 0 else None
        metadata = table_metadata(
            warehouse, schema, name, order_by=_newest(table), counts=counts,
            row_count=build.row_count, unchanged=unchanged,
        )  # fmt: skip
        return dg.MaterializeResult(metadata=metadata)

    return _model


core_leads = build_model_asset(
    "core.leads",
    "One row per lead across landing, ProofTest (flagged test), Tripwire and deals created in "
    "AmoCRM, with reporting day, UTM, AmoCRM status and targetologist. Rebuilt in one "
    "transaction: re-running gives the same table.",
)
core_sales = build_model_asset(
    "core.sales",
    "One row per real sale: duplicate webhooks count once, the funnel comes from the AmoCRM "
    "pipeline, a webhook on the wrong pipeline is kept and flagged; paid tripwire purchases.",
)
core_ad_spend = build_model_asset(
    "core.ad_spend_daily",
    "Facebook spend, impressions, clicks and reported leads per ad per day, in the account "
    "currency and converted to the reporting currency (FX_RATES), with the targetologist.",
)
marts_leads_total = build_model_asset(
    "marts.leads_total",
    "Dashboard: leads and test leads per reporting day (replaces GET /leads/total).",
)
marts_leads_by_funnel = build_model_asset(
    "marts.leads_by_funnel",
    "Dashboard: leads per day and funnel and how many reached AmoCRM (GET /leads/by-funnel).",
)
marts_sales_total = build_model_asset(
    "marts.sales_total",
    "Dashboard: sales and revenue per day, funnel and currency (replaces GET /sales/total).",
)
marts_targetologist_daily = build_model_asset(
    "marts.targetologist_daily",
    "Dashboard: spend, leads, sales, revenue, CPL, CPA and ROAS per day and targetologist; "
    "days inside Facebook's restatement window are marked provisional.",
)
marts_leads_by_targetologist = build_model_asset(
    "marts.leads_by_targetologist",
    "Dashboard API: leads per day, targetologist and funnel; a targetologist's token reads "
    "its own rows of it (row-level security) for the lead endpoints.",
)
marts_sales_by_targetologist = build_model_asset(
    "marts.sales_by_targetologist",
    "Dashboard API: sales and revenue per day, targetologist, funnel and currency; a "
    "targetologist's token reads its own rows of it for the sales endpoint.",
)

MODEL_TABLES = list(DAY_COLUMNS)
model_assets = [
    core_leads, core_sales, core_ad_spend, marts_leads_total,
    marts_leads_by_funnel, marts_sales_total, marts_targetologist_daily,
    marts_leads_by_targetologist, marts_sales_by_targetologist,
]  # fmt: skip

"""Data quality of the core tables with Great Expectations 1.x suites, run inside blocking asset
checks: when a core table breaks its suite, the marts built from it in the same run are not
rebuilt, so bad numbers never reach the dashboard. GX is imported lazily (it costs seconds)."""

from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
from psycopg import sql

from contract.canonical import FUNNELS, UNKNOWN_FUNNEL
from resources.settings import fx_rates, reporting_currency
from resources.warehouse import WarehouseResource

EARLIEST_DAY = date(2015, 1, 1)


def _expectations(table: str) -> list[Any]:
    import great_expectations as gx

    e = gx.expectations
    today = pd.Timestamp.today().date()
    day_range = {"min_value": EARLIEST_DAY, "max_value": today.replace(year=today.year + 1)}
    if table == "core.sales":
        # the currencies the models can convert: the reporting one and every FX_RATES entry
        currencies = sorted({reporting_currency(), *fx_rates()})
        return [
            e.ExpectColumnValuesToNotBeNull(column="sale_key"),
            e.ExpectColumnValuesToBeUnique(column="sale_key"),
            e.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            e.ExpectColumnValuesToBeInSet(column="currency", value_set=currencies),
            e.ExpectColumnValuesToBeInSet(column="funnel", value_set=list(FUNNELS)),
            e.ExpectColumnValuesToBeBetween(column="report_day", **day_range),
        ]
    return [
        e.ExpectColumnValuesToNotBeNull(column="lead_key"),
        e.ExpectColumnValuesToBeUnique(column="lead_key"),
        # core.leads files a landing lead that names no funnel under UNKNOWN_FUNNEL by design
        e.ExpectColumnValuesToBeInSet(column="funnel", value_set=[*FUNNELS, UNKNOWN_FUNNEL]),
        e.ExpectColumnValuesToNotBeNull(column="targetologist"),
        e.ExpectColumnValuesToBeBetween(column="report_day", **day_range),
    ]


@dataclass
class Failure:
    expectation: str
    column: str
    unexpected: int


def validate(table: str, frame: pd.DataFrame) -> list[Failure]:
    """The suite's failed expectations on `frame` (empty: the table is fine)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # an asset check's log is no place for progress bars
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(table)
    batch = (
        source.add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=table)
    for expectation in _expectations(table):
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    failures = []
    for r in result.results:
        config = r.expectation_config
        if not r.success and config is not None:
            column = str(config.kwargs.get("column"))
            failures.append(
                Failure(config.type, column, int(r.result.get("unexpected_count") or 0))
            )
    return failures


def quality_check(table: str) -> dg.AssetChecksDefinition:
    schema, name = table.split(".")

    @dg.asset_check(
        asset=dg.AssetKey([schema, name]),
        name="data_quality",
        blocking=True,
        description=f"Great Expectations suite on {table}: keys unique and present, amounts "
        "non-negative, currencies, funnels and days known.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, name))
        with warehouse.connection() as conn:
            frame = _frame(conn, query)
        failures = validate(table, frame)
        return dg.AssetCheckResult(
            passed=not failures,
            severity=dg.AssetCheckSeverity.ERROR,
            description="suite passed" if not failures else f"{len(failures)} expectations failed",
            metadata={
                "rows": len(frame),
                "failures": dg.MetadataValue.json([f.__dict__ for f in failures]),
            },
        )

    return _check


def _frame(conn: Any, query: sql.Composable) -> pd.DataFrame:
    cursor = conn.execute(query)
    columns = [c.name for c in cursor.description or []]
    return pd.DataFrame(cursor.fetchall(), columns=columns)


quality_checks = [quality_check("core.leads"), quality_check("core.sales")]

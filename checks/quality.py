"""Data quality of the core tables with Great Expectations 1.x suites, run inside blocking asset
checks: when a core table breaks its suite, the marts built from it in the same run are not
rebuilt, so bad numbers never reach the dashboard. The suites run in PostgreSQL through GX's SQL
datasource (each expectation one query over the table; no row leaves the database), with the
values allowed drawn from configuration: the contract's funnels, and the currencies the models
can convert. GX is imported lazily (it costs seconds)."""

import hashlib
import json
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
from psycopg import sql

from resources.canonical import FUNNELS, UNKNOWN_FUNNEL
from resources.embedded_pg import sqlalchemy_uri
from resources.settings import fx_rates, reporting_currency
from resources.warehouse import WarehouseResource

EARLIEST_DAY = date(2015, 1, 1)
SHOWN_VALUES = 5  # unexpected values named in a failure's message


def suite(table: str) -> list[tuple[str, dict[str, Any]]]:
    """`table`'s expectations as (GX expectation class, its arguments)."""
    today = date.today()
    day_range = {"min_value": EARLIEST_DAY, "max_value": today.replace(year=today.year + 1)}
    if table == "core.sales":
        # the currencies the models can convert: the reporting one and every FX_RATES entry
        currencies = sorted({reporting_currency(), *fx_rates()})
        return [
            ("ExpectColumnValuesToNotBeNull", {"column": "sale_key"}),
            ("ExpectColumnValuesToBeUnique", {"column": "sale_key"}),
            ("ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0}),
            ("ExpectColumnValuesToBeInSet", {"column": "currency", "value_set": currencies}),
            ("ExpectColumnValuesToBeInSet", {"column": "funnel", "value_set": list(FUNNELS)}),
            ("ExpectColumnValuesToBeBetween", {"column": "report_day", **day_range}),
        ]
    return [
        ("ExpectColumnValuesToNotBeNull", {"column": "lead_key"}),
        ("ExpectColumnValuesToBeUnique", {"column": "lead_key"}),
        # core.leads files a landing lead that names no funnel under UNKNOWN_FUNNEL by design
        (
            "ExpectColumnValuesToBeInSet",
            {"column": "funnel", "value_set": [*FUNNELS, UNKNOWN_FUNNEL]},
        ),  # fmt: skip
        ("ExpectColumnValuesToNotBeNull", {"column": "targetologist"}),
        ("ExpectColumnValuesToBeBetween", {"column": "report_day", **day_range}),
    ]


def suite_digest(table: str) -> str:
    """What the suite asks today (its values come from configuration and the date)."""
    return hashlib.sha256(json.dumps(suite(table), default=str).encode()).hexdigest()[:16]


@dataclass
class Failure:
    expectation: str
    column: str
    unexpected: int
    examples: list[str]  # a few of the unexpected values, as text

    def sentence(self, table: str) -> str:
        """e.g. "core.sales.funnel: 1 row fails expect_column_values_to_be_in_set ('webinar')"."""
        shown = f" ({', '.join(map(repr, self.examples))})" if self.examples else ""
        rows = "row fails" if self.unexpected == 1 else "rows fail"
        return f"{table}.{self.column}: {self.unexpected} {rows} {self.expectation}{shown}"


def validate(
    warehouse: WarehouseResource, table: str, relation: str | None = None
) -> list[Failure]:
    """The failed expectations of `table`'s suite on `relation` (default: `table` itself) in the
    warehouse; empty: the table is fine."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.datasource.fluent.interfaces import GxDatasourceWarning

    rows = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*(relation or table).split(".")))
    context = gx.get_context(mode="ephemeral")
    # an asset check's log is no place for progress bars
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # the generic SQL datasource: GX's postgres one refuses a URL whose host is a socket path
    # (and would warn that it exists on every run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GxDatasourceWarning)
        source = context.data_sources.add_sql(
            "warehouse", connection_string=sqlalchemy_uri(warehouse.url, "psycopg")
        )
        engine = source.get_execution_engine()
        try:
            batch = (
                source.add_query_asset(table, query=rows.as_string())
                .add_batch_definition_whole_table("all")
                .get_batch()
            )
            expectations = gx.ExpectationSuite(name=table)
            for name, arguments in suite(table):
                expectations.add_expectation(getattr(gx.expectations, name)(**arguments))
            return _failures(batch.validate(expectations))
        finally:
            engine.engine.dispose()  # the check's connections end with it


def _failures(result: Any) -> list[Failure]:
    failures = []
    for r in result.results:
        config = r.expectation_config
        if not r.success and config is not None:
            examples = r.result.get("partial_unexpected_list") or []
            failures.append(
                Failure(
                    config.type,
                    str(config.kwargs.get("column")),
                    int(r.result.get("unexpected_count") or 0),
                    sorted({str(v) for v in examples})[:SHOWN_VALUES],
                )
            )
    return failures


def check_result(warehouse: WarehouseResource, table: str) -> dg.AssetCheckResult:
    """The suite's verdict on `table`. Its rows change only with a build that rewrote some: when
    none did since the content last passed this same suite, it passes without asking again
    (an hourly run with nothing new costs one SELECT, not GX's start and a scan)."""
    built = _rewritten_by(warehouse, table)
    key = None if built is None else f"{built}:{suite_digest(table)}"
    if key is not None and key == _validated(warehouse, table):
        return dg.AssetCheckResult(
            passed=True,
            description=f"unchanged since build {built}, which passed this suite",
            metadata={"failures": dg.MetadataValue.json([])},
        )
    failures = validate(warehouse, table)
    if not failures and key is not None:  # unless a build rewrote it meanwhile
        warehouse.fetch_all(
            "UPDATE ops.model_builds SET validated = %s WHERE model = %s"
            " AND rewritten_build_id = %s RETURNING 1",
            (key, table, built),
        )
    return dg.AssetCheckResult(
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f.sentence(table) for f in failures) or "suite passed",
        metadata={"failures": dg.MetadataValue.json([f.__dict__ for f in failures])},
    )


def _rewritten_by(warehouse: WarehouseResource, table: str) -> int | None:
    """The build that last rewrote rows of `table` (None: never built)."""
    rows = warehouse.fetch_all(
        "SELECT rewritten_build_id FROM ops.model_builds WHERE model = %s", (table,)
    )
    return rows[0][0] if rows else None


def _validated(warehouse: WarehouseResource, table: str) -> str | None:
    rows = warehouse.fetch_all("SELECT validated FROM ops.model_builds WHERE model = %s", (table,))
    return rows[0][0] if rows else None


QUALITY_TABLES = ("core.leads", "core.sales")


def quality_spec(table: str) -> dg.AssetCheckSpec:
    """The suite's check on `table`; checks/asset_checks.py runs it in its asset's check step.
    Blocking: the marts built from a table that breaks its suite are not rebuilt in that run."""
    return dg.AssetCheckSpec(
        "data_quality",
        asset=dg.AssetKey(table.split(".")),
        blocking=True,
        description=f"Great Expectations suite on {table}, run in PostgreSQL: keys unique and "
        "present, amounts non-negative, currencies (REPORTING_CURRENCY, FX_RATES), funnels "
        "(the contract's, and 'unknown' for leads) and days known; not asked again of rows "
        "that passed it unchanged.",
    )

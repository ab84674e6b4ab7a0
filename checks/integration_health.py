"""`marts.integration_health`, the latest verdict of every diagnostic (what the dashboard's health
panel and `GET /diagnostics` read), and its one writer: `record` stores verdicts and records the
asset as materialized with its new rows, so the UI shows the table as it stands. The checks and
`make diagnose` call it; nothing else writes the table, and no diagnostic reads it."""

import json

import dagster as dg

from assets.metadata import table_metadata
from checks.diagnostics import NOT_CONFIGURED, Diagnostic
from resources.warehouse import WarehouseResource

INTEGRATION_HEALTH = dg.AssetKey(["marts", "integration_health"])
integration_health = dg.AssetSpec(
    INTEGRATION_HEALTH,
    group_name="marts",
    kinds={"postgres"},
    owners=["team:data"],
    description="Dashboard: the latest verdict of each integration diagnostic (the asset "
    "checks' results, and `make diagnose`'s), with its figures. Written only by the checks.",
)


def store(warehouse: WarehouseResource, diagnostics: list[Diagnostic]) -> None:
    """Keep the latest result of each; a diagnostic that cannot judge (not_configured) removes
    its old verdict rather than leaving it standing."""
    with warehouse.connection() as conn:
        for d in diagnostics:
            if d.status == NOT_CONFIGURED:
                conn.execute("DELETE FROM marts.integration_health WHERE name = %s", (d.name,))
                continue
            conn.execute(
                "INSERT INTO marts.integration_health (name, status, message, details)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " status = EXCLUDED.status, message = EXCLUDED.message,"
                " details = EXCLUDED.details, checked_at = now()",
                (d.name, d.status, d.message, json.dumps(d.details)),
            )


def record(
    instance: dg.DagsterInstance,
    warehouse: WarehouseResource,
    diagnostics: list[Diagnostic],
    why: str,
) -> None:
    """Store the verdicts and record the table's new state as the asset's materialization."""
    store(warehouse, diagnostics)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=INTEGRATION_HEALTH,
            description=why,
            metadata=table_metadata(warehouse, "marts", "integration_health"),
        )
    )

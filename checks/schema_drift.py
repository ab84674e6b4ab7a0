"""Schema drift: per Supabase table, whether the source still serves the shape the team
accepted. A column gone or retyped, and a canonical column no source column feeds (and the
contract does not declare absent), are warnings with the diff; new columns are not drift (the
raw mirror adds them). Reads `ops.source_schemas`, which every load writes."""

from __future__ import annotations

from typing import Any

import dagster as dg

from resources.canonical import CanonicalTable
from resources.warehouse import WarehouseResource


def drift(accepted: list[list[str]], served: list[list[str]], inferred: bool) -> list[str]:
    """One line per difference that can lose data: a column gone, or its type changed."""
    now = {name: kind for name, kind in served}
    lines = []
    for name, kind in accepted:
        if name not in now:
            lines.append(f"column {name} ({kind}) is no longer served")
        elif not inferred and now[name] != kind:
            lines.append(f"column {name} changed type: {kind} → {now[name]}")
    return lines


def evaluate(warehouse: WarehouseResource, table: CanonicalTable) -> dg.AssetCheckResult:
    rows = warehouse.fetch_all(
        "SELECT accepted, served, plan, inferred FROM ops.source_schemas"
        " WHERE source = %s AND entity = %s",
        (table.source, table.name),
    )
    if not rows:
        return dg.AssetCheckResult(
            passed=True, description=f"{table.name} has not loaded yet: nothing to compare"
        )
    accepted, served, plan, inferred = rows[0]
    problems = drift(accepted, served, inferred)
    problems += [
        f"canonical column {name} has no source column (write `{name}: <column>`, or `{name}: "
        f"null` if the source has none, under supabase.{table.project}.{table.name}.columns)"
        for name in plan.get("unmapped", [])
    ]
    metadata: dict[str, Any] = {
        "source_table": plan.get("source_table", table.name),
        "served_columns": len(served),
        "accepted_columns": len(accepted),
        "feeds": dg.MetadataValue.json(plan.get("feeds", {})),
    }
    if not problems:
        return dg.AssetCheckResult(
            passed=True,
            description=f"{table.name}: the source serves the accepted shape",
            metadata=metadata,
        )
    metadata["diff"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in problems))
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Supabase {table.project} table {plan.get('source_table', table.name)}: "
            + "; ".join(problems)
            + ". Fix the contract, or accept the shape with `python -m contract accept-drift "
            f"{table.name}`."
        ),
        metadata=metadata,
    )


def drift_spec(table: CanonicalTable) -> dg.AssetCheckSpec:
    """The check of `table`'s shape; checks/asset_checks.py runs it in its asset's check step."""
    return dg.AssetCheckSpec(
        "schema_drift",
        asset=dg.AssetKey([table.raw_schema, table.name]),
        description=(
            f"Warns when {table.name}'s source stops serving a column or changes its type "
            "(against the accepted shape), or when a canonical column has no source column."
        ),
    )

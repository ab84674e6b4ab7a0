"""Compare the warehouse's marts with the world's ground truth, row by row."""

from __future__ import annotations

from resources.warehouse import WarehouseResource
from sandbox.world import World


def compare_marts(warehouse: WarehouseResource, world: World) -> list[str]:
    """Lines describing each difference; empty when every mart equals the truth."""
    problems = []
    actual = warehouse.fetch_all(
        "SELECT day, leads, test_leads FROM marts.leads_total ORDER BY day"
    )
    expected = world.truth_leads_total()
    if actual != expected:
        missing = sorted(set(expected) - set(actual))[:5]
        extra = sorted(set(actual) - set(expected))[:5]
        problems.append(f"marts.leads_total differs: expected rows {missing}, got rows {extra}")
    return problems

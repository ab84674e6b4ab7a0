"""Compare the warehouse's marts with the world's ground truth, row by row."""

from __future__ import annotations

from decimal import Decimal

from psycopg import sql

from resources.warehouse import WarehouseResource
from sandbox import ground_truth
from sandbox.names import UTM_FIELDS
from sandbox.world import World

MART_COLUMNS = {
    "marts.leads_total": "day, leads, test_leads",
    "marts.leads_by_funnel": "day, funnel, leads, synced_to_amocrm",
    "marts.sales_total": "day, funnel, currency, sales, revenue",
    "marts.targetologist_daily": "day, targetologist, currency, spend, impressions, clicks, "
    "leads, sales, revenue, cpl, cpa, roas, is_provisional",
    "marts.leads_by_targetologist": "day, targetologist, funnel, leads, test_leads, "
    "synced_to_amocrm",
    "marts.sales_by_targetologist": "day, targetologist, funnel, currency, sales, revenue",
}


def compare_marts(warehouse: WarehouseResource, world: World) -> list[str]:
    """Lines describing each difference; empty when every mart equals the truth exactly."""
    problems = []
    for table, expected in ground_truth.all_marts(world).items():
        schema, name = table.split(".")
        columns = MART_COLUMNS[table]
        # every mart's key is its leading columns, in the order the truth sorts by
        order = ", ".join(str(i + 1) for i in range(columns.count(",") + 1))
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(columns), sql.Identifier(schema, name), sql.SQL(order)
        )
        actual = warehouse.fetch_all(query)
        if actual != expected:
            missing = [r for r in expected if r not in set(actual)][:3]
            extra = [r for r in actual if r not in set(expected)][:3]
            problems.append(f"{table} differs: expected {missing}, got {extra}")
    return problems


def compare_amocrm(warehouse: WarehouseResource, world: World) -> list[str]:
    """raw_amocrm.leads against the world's live deals, field by field; deletions marked."""
    problems = []
    stored = {
        row[0]: row[1:]
        for row in warehouse.fetch_all(
            "SELECT id, pipeline_id, status_id, price, created_at, updated_at, closed_at,"
            " utm_source, utm_medium, utm_campaign, utm_content, utm_term"
            " FROM raw_amocrm.leads WHERE _deleted_at IS NULL"
        )
    }
    expected = {
        deal["id"]: (
            deal["pipeline_id"],
            deal["status_id"],
            Decimal(deal["price"]),
            deal["created_at"].replace(microsecond=0),
            deal["updated_at"].replace(microsecond=0),
            deal["closed_at"].replace(microsecond=0) if deal["closed_at"] else None,
            *(deal["utm"][k] for k in UTM_FIELDS),
        )  # fmt: skip
        for deal in world.amocrm_leads.values()
    }
    if stored.keys() != expected.keys():
        problems.append(
            f"raw_amocrm.leads ids differ: missing {sorted(expected.keys() - stored.keys())[:5]},"
            f" extra {sorted(stored.keys() - expected.keys())[:5]}"
        )
    wrong = [k for k in expected.keys() & stored.keys() if expected[k] != stored[k]]
    if wrong:
        k = wrong[0]
        problems.append(
            f"raw_amocrm.leads: {len(wrong)} differ, e.g. {k}: {stored[k]} != {expected[k]}"
        )
    return problems


def compare_facebook(warehouse: WarehouseResource, world: World) -> list[str]:
    """raw_facebook.ad_insights_daily against the world's insights, per ad per day."""
    stored = {
        (row[0], row[1]): row[2:]
        for row in warehouse.fetch_all(
            "SELECT ad_id, date, spend, impressions, clicks, leads FROM"
            " raw_facebook.ad_insights_daily"
        )
    }
    expected = {
        key: (row["spend"], row["impressions"], row["clicks"], row["leads"])
        for key, row in world.fb_insights.items()
        if row["impressions"]
    }
    wrong = sorted(k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k))
    if not wrong:
        return []
    k = wrong[0]
    return [f"raw_facebook.ad_insights_daily: {len(wrong)} ad-days differ, e.g. {k}: "
            f"{stored.get(k)} != {expected.get(k)}"]  # fmt: skip


def compare_all(warehouse: WarehouseResource, world: World) -> list[str]:
    return [
        *compare_marts(warehouse, world),
        *compare_amocrm(warehouse, world),
        *compare_facebook(warehouse, world),
    ]

"""Facebook: the first run's 90-day backfill for 3 accounts × 500 ads through the Graph simulator
(async jobs in 30-day chunks, 500-row pages, usage headers read on every call), into the
warehouse; baseline: a bare COPY of the same rows (the local limit of the load step alone)."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from assets.facebook import load_account, sync_account_insights
from resources import embedded_pg
from resources.facebook import FacebookResource
from resources.warehouse import WarehouseResource, engine_for
from sandbox.facebook import FacebookSimulator
from sandbox.server import SimServer
from sandbox.world import World

ADS_PER_ACCOUNT, DAYS = 500, 90
HEADERS = ["Facebook 90-day backfill", "rows", "API calls", "seconds", "rows/s",
           "× baseline time"]  # fmt: skip


def populate(world: World) -> int:
    """Replace the world's ads with 500 per account and 90 days of insights each."""
    rng = random.Random(5)
    for table in (world.fb_campaigns, world.fb_adsets, world.fb_ads):
        table.clear()
    world.fb_insights.clear()
    base = {"status": "ACTIVE", "effective_status": "ACTIVE", "updated_time": world.now}
    today = world.now.date()
    for a, account in enumerate(world.fb_accounts):
        for c in range(5):
            campaign, adset = f"9{a}{c:02d}", f"8{a}{c:02d}"
            world.fb_campaigns[campaign] = {"id": campaign, "name": f"bench {campaign}",
                                            "account_id": account, **base}  # fmt: skip
            world.fb_adsets[adset] = {
                "id": adset, "name": f"bench {adset}", "campaign_id": campaign,
                "account_id": account, **base,
            }  # fmt: skip
            for n in range(ADS_PER_ACCOUNT // 5):
                ad = f"7{a}{c:02d}{n:04d}"
                world.fb_ads[ad] = {
                    "id": ad, "name": f"bench ad {ad}", "adset_id": adset,
                    "campaign_id": campaign, "account_id": account, **base,
                }  # fmt: skip
                for d in range(DAYS):
                    world.fb_insights[(ad, today - timedelta(days=d))] = {
                        "spend": Decimal(rng.randrange(100, 90_000)) / 100,
                        "impressions": rng.randrange(100, 5000),
                        "clicks": rng.randrange(0, 80),
                        "leads": rng.randrange(0, 4),
                    }
    return len(world.fb_insights)


def fresh_warehouse(server: str, name: str) -> WarehouseResource:
    embedded_pg.drop_database(server, name)
    embedded_pg.create_database(server, name)
    warehouse = WarehouseResource(url=embedded_pg.database_uri(server, name))
    warehouse.apply_ddl()
    return warehouse


def baseline(warehouse: WarehouseResource, world: World) -> float:
    started = time.perf_counter()
    with psycopg.connect(warehouse.url) as conn:
        conn.execute("CREATE TABLE t (LIKE raw_facebook.ad_insights_daily INCLUDING DEFAULTS)")
        with conn.cursor().copy("COPY t (ad_id, date, account_id, spend, impressions, clicks,"
                                " leads, account_currency, account_timezone, _raw)"
                                " FROM STDIN") as copy:  # fmt: skip
            for (ad, day), row in world.fb_insights.items():
                copy.write_row((ad, day, world.fb_ads[ad]["account_id"], row["spend"],
                                row["impressions"], row["clicks"], row["leads"], "USD",
                                "Asia/Almaty", "{}"))  # fmt: skip
    return time.perf_counter() - started


def run(server: str) -> list[list[Any]]:
    world = World(11, 0.05)
    rows = populate(world)
    token = "EAAbench"
    sim = FacebookSimulator(world, app_id="1", app_secret="s", access_token=token)
    warehouse = fresh_warehouse(server, "bench_facebook")
    base_seconds = baseline(warehouse, world)
    with SimServer("facebook", sim.app, clock=lambda: world.now) as server_:
        os.environ.update({"FACEBOOK_GRAPH_URL": server_.url, "FACEBOOK_ACCESS_TOKEN": token,
                           "FACEBOOK_API_VERSION": "v25.0"})  # fmt: skip
        started = time.perf_counter()
        with FacebookResource().open() as client:
            for account in world.fb_accounts:
                info = load_account(warehouse, client, account)
                result = sync_account_insights(warehouse, client, info, "hourly")
                assert result.rows_in == rows // 3, result
            seconds = time.perf_counter() - started
            calls, usage = client.stats.requests, client.stats.max_usage_pct
    engine_for(warehouse.url).dispose()
    return [
        ["COPY of the same rows (baseline)", rows, 0, base_seconds, rows / base_seconds, 1.0],
        [f"backfill through Graph (max usage {usage:.0f} %)", rows, calls, seconds,
         rows / seconds, seconds / base_seconds],
    ]  # fmt: skip

"""Facebook: a 90-day insights backfill for 3 accounts × 500 ads through the Graph simulator
(async jobs in 30-day chunks, 500-row pages, usage headers read on every call), into the
warehouse, the accounts side by side as the asset runs them; then the same with one account
throttled for Facebook's usual minute (code 17 / 2446079, regain in 1 minute: a real 60 s
wait, the simulator's clock following ours), and with the accounts one after another as before
issue 12. Baseline: a bare COPY of the same rows (the local limit of the load step alone)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from assets.facebook import load_account, per_account, sync_account_insights
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


@contextmanager
def world_follows_our_clock(world: World) -> Iterator[None]:
    """The simulator's time (usage windows, throttles) moves with the wall clock meanwhile."""
    base, t0, done = world.now, time.monotonic(), threading.Event()

    def tick() -> None:
        while not done.wait(0.2):
            world.now = base + timedelta(seconds=time.monotonic() - t0)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def backfill(
    warehouse: WarehouseResource, world: World, rows: int, parallel: int | None
) -> tuple[float, int, float, float]:
    """(seconds, API calls, max usage %, seconds waited) of one 90-day backfill of every
    account, as the asset runs it: an async job per 30 days, one commit per job."""
    days = (world.now.date() - timedelta(days=DAYS - 1), world.now.date())
    started = time.perf_counter()
    with FacebookResource(**FacebookResource.bound()).open() as client:

        def one(account: str) -> int:
            info = load_account(warehouse, client, account)
            load = sync_account_insights(warehouse, client, info, "partitions", days, "bench")
            return sum(r.rows_in for r in load.results)

        loaded = per_account(list(world.fb_accounts), one, print, parallel)
        seconds = time.perf_counter() - started
        stats = client.stats
    assert sum(loaded.values()) == rows, loaded
    return seconds, stats.requests, stats.max_usage_pct, stats.waited_seconds


def run(server: str) -> list[list[Any]]:
    world = World(11, 0.05)
    rows = populate(world)
    token = "EAAbench"
    sim = FacebookSimulator(world, app_id="1", app_secret="s", access_token=token)
    warehouse = fresh_warehouse(server, "bench_facebook")
    base_seconds = baseline(warehouse, world)
    table: list[list[Any]] = [
        ["COPY of the same rows (baseline)", rows, 0, base_seconds, rows / base_seconds, 1.0]
    ]
    throttled = sorted(world.fb_accounts)[0]  # first in line: one after another, all wait
    with SimServer("facebook", sim.app, clock=lambda: world.now) as server_:
        os.environ.update({"FACEBOOK_GRAPH_URL": server_.url, "FACEBOOK_ACCESS_TOKEN": token,
                           "FACEBOOK_API_VERSION": "v25.0"})  # fmt: skip
        for label, parallel, throttle in (
            ("3 accounts side by side", None, False),
            (f"side by side, {throttled} throttled 1 min", None, True),
            (f"one after another, {throttled} throttled 1 min", 1, True),
        ):
            with world_follows_our_clock(world):
                if throttle:
                    sim.set_usage(throttled, 100, regain_minutes=1)
                seconds, calls, usage, waited = backfill(warehouse, world, rows, parallel)
            table.append([f"{label} (max usage {usage:.0f} %, waited {waited:.0f} s)", rows,
                          calls, seconds, rows / seconds, seconds / base_seconds])  # fmt: skip
    engine_for(warehouse.url).dispose()
    return table

"""AmoCRM: a full leads scan at the vendor's real limit (7 requests/s, 250 leads a page) through
the AmoCRM simulator into the warehouse; baseline: the same scan with the limit lifted on both
sides, which shows what the rate limit itself costs."""

from __future__ import annotations

import os
import time
from typing import Any

from assets.amocrm import sync_leads
from bench.facebook_backfill import fresh_warehouse
from resources.amocrm import AmoCrmResource
from resources.warehouse import engine_for
from sandbox.amocrm import AmoCrmSimulator
from sandbox.server import SimServer
from sandbox.stack import AMOCRM_CLIENT, CLOCK_AHEAD
from sandbox.world import World

HEADERS = ["AmoCRM leads full scan", "leads", "requests", "seconds", "requests/s", "leads/s",
           "429s", "× unlimited time"]  # fmt: skip


def scan(server: str, world: World, rate: float) -> tuple[int, int, float, int]:
    sim = AmoCrmSimulator(world, **AMOCRM_CLIENT, access_token="a", refresh_token="r",
                          rate_limit_per_second=rate)  # fmt: skip
    warehouse = fresh_warehouse(server, "bench_amocrm")
    with SimServer("amocrm", sim.app, clock=lambda: world.now + CLOCK_AHEAD) as server_:
        os.environ.update({"AMOCRM_BASE_URL": server_.url, "AMOCRM_ACCESS_TOKEN": "a",
                           "AMOCRM_REFRESH_TOKEN": "r"})  # fmt: skip
        os.environ["AMOCRM_MAX_RPS"] = str(rate - 0.5 if rate < 100 else rate)
        with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
            started = time.perf_counter()
            result, _ = sync_leads(warehouse, client, {})
            seconds = time.perf_counter() - started
            requests = client.stats.requests
        throttled = sum(1 for r in server_.requests if r.status == 429)
    engine_for(warehouse.url).dispose()
    return result.rows_in, requests, seconds, throttled


def run(server: str) -> list[list[Any]]:
    world = World(11, 3.0)
    free = scan(server, world, 10_000.0)
    real = scan(server, world, 7.0)
    os.environ.pop("AMOCRM_MAX_RPS", None)
    rows = []
    for label, (leads, requests, seconds, throttled) in (
        ("limit lifted (baseline)", free),
        ("at the real limit, 7/s", real),
    ):
        rows.append([label, leads, requests, seconds, requests / seconds, leads / seconds,
                     throttled, seconds / free[2]])  # fmt: skip
    return rows

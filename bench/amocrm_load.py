"""AmoCRM: a full leads scan at the vendor's real limit (7 requests/s, 250 leads a page) through
the AmoCRM simulator into the warehouse; the figure is its requests per second against the
limit, and whether any request was refused with 429."""

from __future__ import annotations

import os
import time

from assets.amocrm import sync_leads
from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target, median_of
from resources.amocrm import AmoCrmResource
from resources.warehouse import engine_for
from sandbox.amocrm import AmoCrmSimulator
from sandbox.server import SimServer
from sandbox.stack import AMOCRM_CLIENT, CLOCK_AHEAD
from sandbox.world import World


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


def measure(server: str, scale: float, runs: int) -> Figure:
    """The full leads scan at the real limit, the median of `runs` by requests/s."""
    world = World(11, scale)

    def once() -> tuple[int, int, float, int]:
        return scan(server, world, 7.0)

    (leads, requests, seconds, _), every = median_of(runs, once, key=lambda r: r[1] / r[2])
    os.environ.pop("AMOCRM_MAX_RPS", None)
    throttled = sum(r[3] for r in every)
    return Figure("AmoCRM full load at the 7 req/s limit", requests / seconds, "req/s",
                  Target(6.5, at_most=False, of_ratio=False), baseline=7.0,
                  ratio=requests / seconds / 7.0, also=throttled == 0,
                  detail=f"{leads:,} leads, {requests} requests, {throttled} × 429 in {runs} "
                         "runs (target: zero)")  # fmt: skip

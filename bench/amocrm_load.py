"""AmoCRM: a full leads scan at the vendor's real limit (7 requests/s, 250 leads a page) through
the AmoCRM simulator into the warehouse; the figure is its requests per second against the
limit, and whether any request was refused with 429. The simulator runs in a process of its own,
as the vendor is remote: in this one it would share the loader's interpreter lock, and its
answering would count as the loader's time."""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import Connection

from assets.amocrm import sync_leads
from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target, median_of
from resources.amocrm import AmoCrmResource
from resources.warehouse import engine_for
from sandbox.amocrm import AmoCrmSimulator
from sandbox.server import SimServer
from sandbox.stack import AMOCRM_CLIENT, CLOCK_AHEAD
from sandbox.world import World

VENDOR_RATE = 7.0
# about 25,300 leads: 102 pages of 250, enough requests for a steady rate (at 4,969 leads, 21
# requests, the start and the merge weighed as much as the pages)
FULL_SCALE = 3.2


def _serve(scale: float, rate: float, pipe: Connection) -> None:
    """In its own process: the world's simulator until `pipe` says stop; sends its URL, then
    the world's lead count and the 429s it answered."""
    world = World(11, scale)
    sim = AmoCrmSimulator(world, **AMOCRM_CLIENT, access_token="a", refresh_token="r",
                          rate_limit_per_second=rate)  # fmt: skip
    with SimServer("amocrm", sim.app, clock=lambda: world.now + CLOCK_AHEAD) as server:
        pipe.send(server.url)
        pipe.recv()
        pipe.send((len(world.amocrm_leads), sum(1 for r in server.requests if r.status == 429)))


def scan(server: str, url: str, rate: float) -> tuple[int, int, float]:
    """(leads loaded, requests, seconds) of one full leads scan from the simulator at `url`."""
    warehouse = fresh_warehouse(server, "bench_amocrm")
    os.environ.update({"AMOCRM_BASE_URL": url, "AMOCRM_ACCESS_TOKEN": "a",
                       "AMOCRM_REFRESH_TOKEN": "r"})  # fmt: skip
    # half a request a second of margin below the simulator's limit, as production keeps
    os.environ["AMOCRM_MAX_RPS"] = str(rate - 0.5)
    with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
        started = time.perf_counter()
        result, _ = sync_leads(warehouse, client, {})
        seconds = time.perf_counter() - started
        requests = client.stats.requests
    engine_for(warehouse.url).dispose()
    return result.rows_in, requests, seconds


def measure(server: str, share: float, runs: int) -> Figure:
    """The full leads scan at the real limit, the median of `runs` by requests/s, in a world
    of `share` of the full scale's leads."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(FULL_SCALE * min(1.0, share), VENDOR_RATE, theirs)
    )
    process.start()
    try:
        url = ours.recv()
        (leads, requests, seconds), _ = median_of(
            runs, lambda: scan(server, url, VENDOR_RATE), key=lambda r: r[1] / r[2]
        )
        ours.send("stop")
        world_leads, throttled = ours.recv()
    finally:
        process.kill()  # it has answered, or the scan failed
        process.join(10)
        os.environ.pop("AMOCRM_MAX_RPS", None)
    return Figure("AmoCRM full load at the 7 req/s limit", requests / seconds, "req/s",
                  Target(6.5, at_most=False, of_ratio=False), baseline=VENDOR_RATE,
                  ratio=requests / seconds / VENDOR_RATE,
                  also=throttled == 0 and leads == world_leads,
                  detail=f"{leads:,} of {world_leads:,} leads, {requests} requests, "
                         f"{throttled} × 429 in {runs} runs (target: zero); the simulator in "
                         "its own process")  # fmt: skip

"""AmoCRM: a full leads scan at the vendor's real limit (7 requests/s, 250 leads a page) through
the AmoCRM simulator into the warehouse; the figure is its requests per second against the
limit, and whether any request was refused with 429. The simulator runs in a process of its own,
as the vendor is remote: in this one it would share the loader's interpreter lock, and its
answering would count as the loader's time."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import NamedTuple

from assets.amocrm import sync_leads
from bench import SPAWN
from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target, median_of
from resources.amocrm import DEFAULT_RATE, AmoCrmResource
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


class Scan(NamedTuple):
    leads: int
    requests: int
    seconds: float  # the whole load: the window, every page, the merge
    paging: float  # from the first request out to the last answer in: what AmoCRM sees


def scan(server: str, url: str) -> Scan:
    """One full leads scan from the simulator at `url`."""
    warehouse = fresh_warehouse(server, "bench_amocrm")
    os.environ.update({"AMOCRM_BASE_URL": url, "AMOCRM_ACCESS_TOKEN": "a",
                       "AMOCRM_REFRESH_TOKEN": "r"})  # fmt: skip
    os.environ.pop("AMOCRM_MAX_RPS", None)  # the production default, the limiter's own
    sent: list[float] = []
    answered: list[float] = []
    with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
        client.http.event_hooks["request"].append(lambda _: sent.append(time.perf_counter()))
        client.http.event_hooks["response"].append(lambda _: answered.append(time.perf_counter()))
        started = time.perf_counter()
        result, _ = sync_leads(warehouse, client, {})
        seconds = time.perf_counter() - started
        requests = client.stats.requests
    engine_for(warehouse.url).dispose()
    return Scan(result.rows_in, requests, seconds, answered[-1] - sent[0])


def measure(server: str, share: float, runs: int) -> Figure:
    """The full leads scan at the real limit, the median of `runs` by requests/s, in a world
    of `share` of the full scale's leads."""
    ours, theirs = SPAWN.Pipe()
    process = SPAWN.Process(target=_serve, args=(FULL_SCALE * min(1.0, share), VENDOR_RATE, theirs))
    process.start()
    try:
        url = ours.recv()
        run, _ = median_of(runs, lambda: scan(server, url), key=lambda r: r.requests / r.paging)
        ours.send("stop")
        world_leads, throttled = ours.recv()
    finally:
        process.kill()  # it has answered, or the scan failed
        process.join(10)
    # requests over the span AmoCRM sees them in (the window before and the merge after send
    # none); the whole load's rate is in the detail
    rate = run.requests / run.paging
    return Figure("AmoCRM full load at the 7 req/s limit", rate, "req/s",
                  Target(6.5, at_most=False, of_ratio=False), baseline=VENDOR_RATE,
                  ratio=rate / VENDOR_RATE, also=throttled == 0 and run.leads == world_leads,
                  detail=f"{run.leads:,} of {world_leads:,} leads, {run.requests} requests in "
                         f"{run.paging:.1f} s from the first out to the last answer in, "
                         f"{throttled} × 429 in {runs} runs (target: zero); the whole load "
                         f"{run.seconds:.1f} s ({run.requests / run.seconds:.2f} req/s with the "
                         "window and the merge); the limiter at its default "
                         f"{DEFAULT_RATE:g}/s; the simulator in its own process")  # fmt: skip

"""The dashboard API's latency at a school's scale: N leads (a million by default) and N/10
sales over two years (make bench's --days), built into the marts by the real models, then every
endpoint over HTTP (the API in its own process, as dashboard_reader), each request's session
from this process, and the figure, issue 14's "dashboard queries as dashboard_reader":
PostgreSQL's own time (planning and execution) for every query a request runs, the worst
endpoint's p95. The HTTP and session p95s go into its detail: on this machine they are mostly
the round trips' and processes' scheduling, not the queries.

Core is filled by SQL here (loading a million leads through every source would take the
bench's whole budget; the loads have their own figures); the marts the API reads are built
from it by the project's own model files.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from api.access import issue_token
from api.reader import Query, Reader
from api.settings import as_reader
from bench import SPAWN
from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target
from contract.model_params import model_params
from resources.sql_files import load_sql
from resources.warehouse import WarehouseResource
from sandbox.server import free_port

ADS = 120
TARGETOLOGISTS = 12
RANGE = {"from": "2026-10-01", "to": "2026-10-30"}  # the page's default: a month
PASSWORD = "bench-reader"
# endpoint → (the SQL files it runs, extra parameters)
ENDPOINTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "/api/traffic-dashboard/leads/total": (("leads_total",), {}),
    "/api/traffic-dashboard/leads/by-funnel": (("leads_by_funnel",), {"funnel": None}),
    "/api/traffic-dashboard/sales/total": (("sales_total",), {"funnel": None}),
    "/api/traffic-dashboard/targetologist-daily": (
        ("targetologist_daily", "targetologist_totals"), {}),
}  # fmt: skip
MARTS = ("marts.leads_by_targetologist", "marts.sales_by_targetologist",
         "marts.targetologist_daily", "marts.source_freshness")  # fmt: skip

FILL_CORE = """
INSERT INTO core.leads (lead_key, source, source_id, funnel, is_test, created_at, report_day,
                        synced_to_amocrm, targetologist)
SELECT 'landing:' || g, 'landing', g::text, f.funnel, f.funnel = 'prooftest',
       d.day::timestamptz, d.day, g %% 3 = 0, 't' || lpad((g %% %(who)s)::text, 2, '0')
FROM generate_series(1, %(leads)s) g
CROSS JOIN LATERAL (SELECT (ARRAY['express', 'flagship', 'tripwire', 'prooftest'])[1 + g %% 4]
                    AS funnel) f
CROSS JOIN LATERAL (SELECT %(last)s::date - (g %% %(days)s) AS day) d;
INSERT INTO core.sales (sale_key, source, funnel, sold_at, report_day, amount, currency,
                        webhook_rows, pipeline_mismatch, tracked, targetologist)
SELECT 'sale:' || g, 'webhook', (ARRAY['express', 'flagship', 'tripwire'])[1 + g %% 3],
       d.day::timestamptz, d.day, 10000 + g %% 5000, 'KZT', 1, false, true,
       't' || lpad((g %% %(who)s)::text, 2, '0')
FROM generate_series(1, %(sales)s) g
CROSS JOIN LATERAL (SELECT %(last)s::date - (g %% %(days)s) AS day) d;
INSERT INTO core.ad_spend_daily (ad_id, date, account_id, currency, spend, spend_reporting,
                                 impressions, clicks, fb_leads, targetologist)
SELECT 'ad' || a, %(last)s::date - d, 'act_1', 'KZT', 5000, 5000, 2000, 40, 3,
       't' || lpad((a %% %(who)s)::text, 2, '0')
FROM generate_series(1, %(ads)s) a, generate_series(0, %(days)s - 1) d;
INSERT INTO ops.source_attempts (source, entity, succeeded, error, run_id)
SELECT s, 'all', true, NULL, 'bench'
FROM unnest(ARRAY['amocrm', 'facebook', 'supabase_main', 'supabase_tripwire',
                  'supabase_traffic']) s;
ANALYZE core.leads, core.sales, core.ad_spend_daily;
"""


def _fill(warehouse: WarehouseResource, leads: int, days: int) -> float:
    """Core: `leads` leads, a tenth as many sales and ADS ads over the `days` ending with the
    range the requests ask for; then the marts the API reads."""
    started = time.perf_counter()
    sizes = {"leads": leads, "sales": max(1, leads // 10), "ads": ADS, "days": days,
             "last": RANGE["to"], "who": TARGETOLOGISTS}  # fmt: skip
    with warehouse.connection() as conn:
        for statement in filter(str.strip, FILL_CORE.split(";\n")):
            conn.execute(statement.encode(), sizes if "%(" in statement else None)
    for table in MARTS:
        warehouse.run_model(table, model_params(warehouse, table))
    with warehouse.connection() as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def _serve(url: str, port: int) -> None:  # in its own process: the client must not share a GIL
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings

    uvicorn.run(create_app(ApiSettings(reader_url=url)), host="127.0.0.1", port=port,
                log_level="error")  # fmt: skip


def _percentiles(call: Callable[[], object], requests: int) -> tuple[float, float]:
    for _ in range(requests // 10):  # warm-up
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return statistics.median(samples), cuts[94]


def _queries(names: tuple[str, ...], extra: dict[str, Any]) -> list[Query]:
    """What the API sends for an endpoint: its queries, then the freshness every answer has."""
    params = {**RANGE, "targetologist": None, **extra}
    return [*((name, params) for name in names), ("freshness", None)]


def _session_p95(reader: Reader, token: str, queries: list[Query], requests: int) -> float:
    """One request's session as the API opens it, from this process: the token, its scope and
    the queries in one round trip, then the commit."""

    def once() -> None:
        with reader.session(token, *queries):
            pass

    return _percentiles(once, requests)[1]


def _sql_p95(reader: Reader, token: str, queries: list[Query], requests: int) -> float:
    """The server's planning plus execution time (EXPLAIN ANALYZE) of a request's queries."""
    explained = [(("EXPLAIN (ANALYZE, FORMAT JSON) " + load_sql(f"api/{name}")).encode(), params)
                 for name, params in queries]  # fmt: skip
    samples = []
    with reader.session(token) as s:
        for _ in range(requests):
            plans = [s.conn.execute(q, p or {}).fetchone()[0][0] for q, p in explained]  # type: ignore[index]
            samples.append(sum(p["Planning Time"] + p["Execution Time"] for p in plans))
    return statistics.quantiles(samples, n=100)[94]


def measure(server: str, leads: int, days: int, requests: int) -> Figure:
    """The dashboard at `leads` leads over `days`; each percentile of `requests` requests."""
    from resources import embedded_pg

    warehouse = fresh_warehouse(server, "bench_api")
    fill_seconds = _fill(warehouse, leads, days)
    warehouse.configure_dashboard_role(PASSWORD)
    url = as_reader(warehouse.url, PASSWORD)
    tokens = {"admin": issue_token(warehouse, targetologist=None).token,
              "targetologist": issue_token(warehouse, targetologist="t03").token}  # fmt: skip
    port = free_port()
    api = SPAWN.Process(target=_serve, args=(url, port))
    api.start()
    # (SQL p95, endpoint and token, HTTP p95, session p95) of each request kind
    rows: list[tuple[float, str, float, float]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_until_up(client)
            reader = Reader(url)
            for path, (names, extra) in ENDPOINTS.items():
                queries = _queries(names, extra)
                for who, token in tokens.items():
                    headers = {"Authorization": f"Bearer {token}"}
                    _, http = _percentiles(
                        lambda: client.get(path, params=RANGE, headers=headers).raise_for_status(),  # noqa: B023
                        requests,
                    )
                    rows.append((_sql_p95(reader, token, queries, requests),
                                 f"{path.rsplit('/', 1)[1]} as {who}", http,
                                 _session_p95(reader, token, queries, requests)))  # fmt: skip
    finally:
        api.terminate()
        api.join(10)
        embedded_pg.drop_database(server, "bench_api")
    sql_p95, name, http, session = max(rows)
    return Figure("dashboard queries as dashboard_reader, p95", sql_p95, "ms",
                  Target(5.0, of_ratio=False),
                  detail=f"{leads:,} leads, {days} days; PostgreSQL's time for a request's "
                         f"queries; worst: {name} (HTTP p95 {http:.1f} ms, its session from "
                         f"this process {session:.1f} ms; worst HTTP p95 "
                         f"{max(r[2] for r in rows):.1f} ms); core filled and marts built in "
                         f"{fill_seconds:.0f} s")  # fmt: skip


def _wait_until_up(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            client.get("/openapi.json")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the API did not start within 60 s")

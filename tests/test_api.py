"""The dashboard API over real HTTP and a real PostgreSQL filled by one full refresh: every
endpoint's numbers equal the sandbox's ground truth; a targetologist's token sees its own rows
only, through every endpoint and parameter and in PostgreSQL itself (row-level security); bad
and hostile parameters are a 422 naming the parameter; tokens are issued and revoked from the
CLI; an AmoCRM outage (402) answers 200 with the last good numbers and AmoCRM stale."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from api import models
from api.access import issue_token, revoke_token
from api.app import create_app
from api.reader import Reader
from api.settings import MAX_RANGE_DAYS, ApiSettings, as_reader
from sandbox import ground_truth
from tests.api_server import READER_PASSWORD, Served, serve
from tests.conftest import ROOT, run_job

LEADS = "/api/traffic-dashboard/leads/total"
BY_FUNNEL = "/api/traffic-dashboard/leads/by-funnel"
SALES = "/api/traffic-dashboard/sales/total"
DAILY = "/api/traffic-dashboard/targetologist-daily"
WHO = "/api/traffic-dashboard/targetologists"
DIAGNOSTICS = "/api/admin/diagnostics"


@pytest.fixture(scope="module")
def api(loaded_warehouse, dagster_instance) -> Iterator[Served]:
    warehouse, _ = loaded_warehouse
    with serve(warehouse, dagster_instance) as served:
        yield served


@pytest.fixture(scope="module")
def world(loaded_warehouse):
    return loaded_warehouse[1].world


@pytest.fixture(scope="module")
def span(world) -> dict[str, str]:
    days = [row[0] for row in ground_truth.leads_total(world)]
    assert (max(days) - min(days)).days < MAX_RANGE_DAYS
    return {"from": min(days).isoformat(), "to": max(days).isoformat()}


def _money(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _sales_truth(world, who: str | None = None) -> dict[tuple, tuple[int, Decimal]]:
    totals: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for d, t, f, c, n, revenue in ground_truth.sales_by_targetologist(world):
        if who in (None, t):
            totals[(d.isoformat(), f, c)][0] += n
            totals[(d.isoformat(), f, c)][1] += revenue
    return {k: (v[0], v[1]) for k, v in totals.items()}


def test_given_an_admin_token_then_every_endpoint_equals_the_ground_truth(api, world, span):
    admin = api.token()
    leads = api.get(LEADS, admin, **span)
    assert leads.status_code == 200, leads.text
    expected = [(d.isoformat(), n, t) for d, n, t in ground_truth.leads_total(world)]
    body = leads.json()["data"]
    assert [(r["day"], r["leads"], r["test_leads"]) for r in body["days"]] == expected
    assert (body["leads"], body["test_leads"]) == (sum(e[1] for e in expected),
                                                   sum(e[2] for e in expected))  # fmt: skip

    funnels = api.get(BY_FUNNEL, admin, **span).json()["data"]
    expected_f = [(d.isoformat(), f, n, s) for d, f, n, s in ground_truth.leads_by_funnel(world)]
    assert [(r["day"], r["funnel"], r["leads"], r["synced_to_amocrm"])
            for r in funnels["days"]] == expected_f  # fmt: skip
    express = api.get(BY_FUNNEL, admin, funnel="express", **span).json()["data"]
    assert express["funnels"] == [{"funnel": "express",
                                   "leads": sum(e[2] for e in expected_f if e[1] == "express"),
                                   "synced_to_amocrm": sum(e[3] for e in expected_f
                                                           if e[1] == "express")}]  # fmt: skip

    sales = api.get(SALES, admin, **span).json()["data"]
    got = {(r["day"], r["funnel"], r["currency"]): (r["sales"], _money(r["revenue"]))
           for r in sales["days"]}  # fmt: skip
    assert got == {(d.isoformat(), f, c): (n, revenue)
                   for d, f, c, n, revenue in ground_truth.sales_total(world)}  # fmt: skip
    assert sales["sales"] == sum(n for n, _ in got.values())

    daily = api.get(DAILY, admin, **span).json()["data"]
    columns = ("day", "targetologist", "currency", "spend", "impressions", "clicks", "leads",
               "sales", "revenue", "cpl", "cpa", "roas", "is_provisional")  # fmt: skip
    expected_d = [tuple(v.isoformat() if isinstance(v, date) else v for v in row)
                  for row in ground_truth.targetologist_daily(world)]  # fmt: skip
    got_d = [tuple(Decimal(str(r[c])) if isinstance(r[c], float) else r[c] for c in columns)
             for r in daily["rows"]]  # fmt: skip
    assert got_d == expected_d
    assert daily["currency"] == "KZT"
    names = api.get(WHO, admin).json()["data"]["targetologists"]
    assert names == sorted({row[1] for row in expected_d})


def test_given_a_targetologist_token_then_only_its_own_rows_through_every_endpoint(
    api, world, span
):
    own = api.token("Aida")
    truth = [r for r in ground_truth.leads_by_targetologist(world) if r[1] == "Aida"]
    body = api.get(LEADS, own, **span).json()["data"]
    assert body["leads"] == sum(r[3] - r[4] for r in truth) > 0
    assert body["test_leads"] == sum(r[4] for r in truth)
    funnels = api.get(BY_FUNNEL, own, **span).json()["data"]["funnels"]
    assert {f["funnel"]: f["leads"] for f in funnels} == {
        f: sum(r[3] for r in truth if r[2] == f) for f in {r[2] for r in truth}
    }
    sales = api.get(SALES, own, **span).json()["data"]["days"]
    assert {(r["day"], r["funnel"], r["currency"]): (r["sales"], _money(r["revenue"]))
            for r in sales} == _sales_truth(world, "Aida")  # fmt: skip
    daily = api.get(DAILY, own, **span).json()["data"]
    assert {r["targetologist"] for r in daily["rows"]} == {"Aida"}
    assert [t["targetologist"] for t in daily["totals"]] == ["Aida"]
    assert api.get(WHO, own).json()["data"]["targetologists"] == ["Aida"]
    assert api.get(DAILY, own, targetologist="Aida", **span).status_code == 200
    for path in (LEADS, BY_FUNNEL, SALES, DAILY):
        other = api.get(path, own, targetologist="Bekzat", **span)
        assert other.status_code == 403 and "Aida" in other.json()["detail"], path
        assert "Bekzat" not in other.text.replace("targetologist=Bekzat", "")
    refused = httpx_post(api, DIAGNOSTICS, own)
    assert refused.status_code == 403


def httpx_post(api: Served, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(api.url + path, headers=headers, timeout=30)
    if response.status_code == 200:
        models.Diagnostics.model_validate(response.json())
    return response


def test_given_row_level_security_then_postgresql_itself_hides_another_targetologists_rows(
    api, span
):
    """As if the API had a bug and asked for Bekzat's rows with Aida's token: none exist."""
    own = api.token("Aida")
    reader = Reader(as_reader(api.warehouse.url, READER_PASSWORD))
    with reader.session(own) as s:
        params = {"from": span["from"], "to": span["to"], "targetologist": "Bekzat",
                  "funnel": None}  # fmt: skip
        for query in ("leads_by_funnel", "sales_total", "targetologist_daily",
                      "targetologist_totals"):  # fmt: skip
            assert s.rows(query, params) == [], query
        assert s.rows("leads_total", params) == [{"day": None, "leads": 0, "test_leads": 0}]
        assert s.rows("diagnostics") == []
        everything = s.conn.execute("SELECT DISTINCT targetologist FROM marts.targetologist_daily")
        assert everything.fetchall() == [("Aida",)]
        for school_wide in ("leads_total", "leads_by_funnel", "sales_total"):
            count = s.conn.execute(f"SELECT count(*) FROM marts.{school_wide}").fetchone()  # noqa: S608
            assert count == (0,), school_wide
    with reader.session("twd_not-a-token") as s:
        assert s.scope is None
        assert s.conn.execute("SELECT count(*) FROM marts.targetologist_daily").fetchone() == (0,)


def test_given_no_wrong_revoked_or_expired_token_then_401(api, span):
    assert api.get(LEADS, None, **span).status_code == 401
    wrong = api.get(LEADS, "twd_wrong", **span)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert "unknown, expired or revoked" in wrong.json()["detail"]
    basic = httpx.get(api.url + LEADS, headers={"Authorization": "Basic YTpi"}, timeout=30)
    assert basic.status_code == 401 and basic.json()["detail"].startswith("send the header")
    issued = issue_token(api.warehouse, targetologist=None)
    assert api.get(LEADS, issued.token, **span).status_code == 200
    assert revoke_token(api.warehouse, issued.id)
    assert api.get(LEADS, issued.token, **span).status_code == 401
    expired = issue_token(api.warehouse, targetologist=None, expires_in=timedelta(seconds=-1))
    assert api.get(LEADS, expired.token, **span).status_code == 401
    stored = api.warehouse.fetch_all("SELECT token_sha256 FROM ops.api_tokens")
    assert all(issued.token not in row[0] for row in stored)  # only hashes are kept


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"from": "2026-13-01"}, "from: not a date (YYYY-MM-DD): '2026-13-01'"),
        ({"to": "yesterday"}, "to: not a date (YYYY-MM-DD): 'yesterday'"),
        ({"from": "2026-10-02", "to": "2026-10-01"}, "from: 2026-10-02 is after to=2026-10-01"),
        ({"from": "2020-01-01", "to": "2026-01-01"},
         f"to: the range is 2193 days; at most {MAX_RANGE_DAYS}"),
        ({"funnel": "vip"}, "funnel: unknown funnel 'vip' (allowed: express, flagship, tripwire"),
        ({"form": "2026-10-01"},
         "form: unknown parameter (allowed: from, to, funnel, targetologist)"),
        ({"funnel": "express' OR '1'='1"}, "funnel: unknown funnel \"express' OR '1'='1\""),
        ({"from": "2026-10-01'); DROP TABLE marts.leads_total;--"}, "from: not a date"),
        ({"targetologist": "x" * 201}, "targetologist: must be 1 to 200 characters"),
        ({"targetologist": "Aida\x00"}, "targetologist: must not contain a NUL character"),
    ],
)  # fmt: skip
def test_given_bad_parameters_then_422_naming_the_parameter(api, params, detail):
    response = api.get(BY_FUNNEL, api.token(), **params)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_given_a_bad_parameter_and_a_bad_token_then_401_first(api):
    """Authentication before validation: a caller without a good token learns nothing about
    the parameters; a path without a token still answers 422."""
    for bad in ({"from": "2026-13-01"}, {"form": "2026-10-01"}, {"funnel": "vip"}):
        assert api.get(BY_FUNNEL, "twd_wrong", **bad).status_code == 401
        missing = api.get(BY_FUNNEL, None, **bad)
        assert missing.status_code == 401 and missing.json()["detail"].startswith("send the header")
    assert api.get(BY_FUNNEL, api.token(), funnel="vip").status_code == 422
    assert api.get(DIAGNOSTICS, None, extra="1").status_code == 422


def test_given_a_wrong_reporting_zone_then_503_with_its_sentence(api, monkeypatch):
    monkeypatch.setenv("REPORTING_TZ", "Mars/Olympus")  # the default range is "today" there
    response = api.get(LEADS, api.token())
    assert response.status_code == 503
    assert response.json()["detail"].startswith("REPORTING_TZ='Mars/Olympus' is not a time zone")


def test_given_hostile_but_well_formed_values_then_no_rows_and_nothing_broken(api, span):
    admin = api.token()
    for hostile in ("x' OR '1'='1", "Robert'); DROP TABLE marts.leads_total;--", "<script>",
                    "Айгерим 👩‍💻"):  # fmt: skip
        response = api.get(DAILY, admin, targetologist=hostile, **span)
        assert response.status_code == 200 and response.json()["data"]["rows"] == []
    repeated = api.get(LEADS + "?from=2026-10-01&from=2026-10-02", admin)
    assert repeated.status_code == 422 and "given more than once" in repeated.json()["detail"]
    assert api.get(LEADS, admin, **span).json()["data"]["leads"] > 0  # the marts still stand


def test_given_stored_check_results_then_diagnostics_in_the_old_shape_and_health(api):
    admin = api.token()
    response = httpx_post(api, DIAGNOSTICS, admin)
    assert response.status_code == 200, response.text
    body = response.json()
    stored = api.warehouse.fetch_all(
        "SELECT name, status, message FROM marts.integration_health ORDER BY name"
    )
    assert stored, "the refresh stored its checks' results"
    assert [(d["name"], d["status"], d["message"]) for d in body["data"]["diagnostics"]] == stored
    assert set(body["data"]["diagnostics"][0]) == {"name", "status", "message", "details"}
    summary = body["data"]["summary"]
    assert summary["total"] == len(stored) == summary["ok"] + summary["warning"] + summary["error"]
    overall = "error" if summary["error"] else "warning" if summary["warning"] else "ok"
    assert body["success"] is True and body["data"]["overall_status"] == overall
    health = api.get(DIAGNOSTICS, None)  # the tests run no daemon: the probe says so
    assert health.status_code == 503
    shape = health.json()
    assert shape["success"] is True and shape["service"] == "integrations-diagnostics"
    assert shape["status"] == "unhealthy" and "timestamp" in shape
    assert any(p.startswith("Dagster daemon") for p in shape["problems"]), shape["problems"]
    docs = api.get("/openapi.json", None).json()
    assert {LEADS, BY_FUNNEL, SALES, DAILY, WHO, DIAGNOSTICS} <= set(docs["paths"])


def test_given_cors_origins_then_only_they_may_call_from_a_browser():
    settings = ApiSettings(
        reader_url="postgresql://unused@/x", cors_origins=("https://dash.example",)
    )
    app = create_app(settings)
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip

    async def ask(origin: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as client:  # fmt: skip
            return await client.options(LEADS, headers={"Origin": origin, **preflight})

    allowed = asyncio.run(ask("https://dash.example"))
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    refused = asyncio.run(ask("https://evil.example"))
    assert "access-control-allow-origin" not in refused.headers


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_given_the_cli_then_tokens_are_issued_listed_and_revoked(api, span):
    env = {**os.environ, "WAREHOUSE_URL": api.warehouse.url, "DAGSTER_PG_URL": "unused"}
    issued = _cli("token", "issue", "--targetologist", "Dana", "--label", "Dana's laptop", env=env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    token_id = issued.stdout.split()[1]
    assert {r["targetologist"] for r in api.get(DAILY, token, **span).json()["data"]["rows"]} == {
        "Dana"
    }
    listed = _cli("token", "list", env=env)
    assert "Dana's laptop" in listed.stdout and token not in listed.stdout
    assert _cli("token", "revoke", token_id, env=env).returncode == 0
    assert api.get(DAILY, token, **span).status_code == 401
    unknown = _cli("token", "issue", "--targetologist", "Nobody", env=env)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "no targetologist named 'Nobody' (known: Aida, Bekzat, Dana, Erlan" in unknown.stderr
    no_password = {k: v for k, v in env.items() if not k.startswith("DASHBOARD_READER")}
    serve_cli = _cli("serve", "--port", "1", env=no_password)
    assert serve_cli.returncode == 2 and serve_cli.stderr.count("\n") == 1
    assert "DASHBOARD_READER_PASSWORD is not set" in serve_cli.stderr
    assert "Traceback" not in serve_cli.stderr + unknown.stderr


def test_given_amocrm_answers_402_then_200_with_the_last_good_numbers_and_amocrm_stale(
    api, loaded, dagster_instance, span
):
    _, sandbox = loaded
    admin = api.token()
    before = {path: api.get(path, admin, **span).json()["data"] for path in (LEADS, SALES)}
    amocrm = sandbox.servers["amocrm"].faults
    amocrm.add(r"/api/v4/.*", status=402, times=-1,
               body={"title": "Payment Required", "status": 402})  # fmt: skip
    try:
        assert not run_job(dagster_instance, "refresh_amocrm").success
        assert run_job(dagster_instance, "rebuild_models").success
        for path, data in before.items():
            response = api.get(path, admin, **span)
            assert response.status_code == 200
            assert response.json()["data"] == data
            fresh = response.json()["freshness"]
            assert fresh["stale"] == ["amocrm"]
            source = next(s for s in fresh["sources"] if s["source"] == "amocrm")
            assert source["status"] == "error" and "402" in source["error"]
            assert source["as_of"] is not None  # the last good load is still named
    finally:  # the loaded warehouse is shared: AmoCRM back, as the other tests expect it
        amocrm.clear()
        assert run_job(dagster_instance, "refresh_amocrm").success
        assert run_job(dagster_instance, "rebuild_models").success
    assert api.get(LEADS, admin, **span).json()["freshness"]["stale"] == []

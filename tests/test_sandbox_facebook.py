"""Tests for `sandbox/facebook.py`, the Graph API (Marketing API) simulator.

What is exercised: the simulator end to end over HTTP with plain httpx, against a live `World`
(seed 7, scale 0.3: three ad accounts in two currencies and two time zones). The shared world is
moved to 20:00 UTC, when Almaty has already reached the next day and Moscow has not, so "today"
differs between accounts.

What is checked: account fields; cursor paging of campaigns/adsets/ads and `updated_time`
filtering; sync insights equal to `world.fb_insights` as Graph's strings, per account; the async
report run's lifecycle and pages; restated spend after the world advances; the cell limit (HTTP
500, code 1), 3018, failed jobs; `debug_token` and the expired token (190/463); usage headers on
success and error responses, per-account throttling; Graph's error bodies through fault injection.
Tests that change simulator state get a simulator of their own (`own`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sandbox.facebook import (
    GRAPH_ERRORS,
    MSG_APP_TOKEN_INVALID,
    MSG_REDUCE_DATA,
    MSG_TOKEN_INVALID,
    MSG_UNSUPPORTED,
    FacebookSimulator,
    usage_headers,
)
from sandbox.server import SimServer
from sandbox.world import START, World

SEED, SCALE = 7, 0.3
VERSION = "v25.0"
TOKEN = "EAAGsandboxUserToken"
APP_SECRET = "sandbox-app-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INSIGHT_FIELDS = (
    "ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,spend,impressions,clicks,"
    "actions,account_currency,account_id,date_start,date_stop"
)
USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage", "x-ad-account-usage")
Own = Callable[..., tuple[FacebookSimulator, httpx.Client]]


def _world() -> World:
    # 20:00 UTC: Almaty (UTC+5) is on the next day already, Moscow (UTC+3) is not.
    return World(seed=SEED, scale=SCALE).advance(20)


def _simulator(world: World, **kwargs: Any) -> FacebookSimulator:
    app_id = world.fb_token["app_id"]
    return FacebookSimulator(
        world, app_id=app_id, app_secret=APP_SECRET, access_token=TOKEN, **kwargs
    )


@pytest.fixture(scope="module")
def world() -> World:
    return _world()


@pytest.fixture(scope="module")
def sim(world: World) -> FacebookSimulator:
    return _simulator(world)


@pytest.fixture(scope="module")
def server(sim: FacebookSimulator) -> Iterator[SimServer]:
    with SimServer("facebook", sim.app) as server:
        yield server


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    # The token in a header: httpx would drop a `next` link's query for client-level params.
    with httpx.Client(base_url=f"{server.url}/{VERSION}", headers=AUTH) as client:
        yield client


@pytest.fixture
def own(world: World) -> Iterator[Own]:
    """`own(world=shared, **simulator_kwargs)`: a simulator and client of the test's own."""
    with ExitStack() as stack:

        def make(world: World = world, **kwargs: Any) -> tuple[FacebookSimulator, httpx.Client]:
            simulator = _simulator(world, **kwargs)
            server = stack.enter_context(SimServer("facebook-own", simulator.app))
            client = httpx.Client(base_url=f"{server.url}/{VERSION}", headers=AUTH)
            return simulator, stack.enter_context(client)

        yield make


# -- helpers ---------------------------------------------------------------------------------------


def _today(world: World, account_id: str) -> date:
    return world.now.astimezone(ZoneInfo(world.fb_accounts[account_id]["timezone_name"])).date()


def _range(since: date | str, until: date | str) -> str:
    return json.dumps({"since": str(since), "until": str(until)})


def _daily(since: date | str, until: date | str, **extra: Any) -> dict[str, Any]:
    params = {"level": "ad", "fields": INSIGHT_FIELDS, "time_increment": 1, "limit": 100}
    return params | {"time_range": _range(since, until)} | extra


def _pages(http: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages = [_ok(http.get(path, params=params))]
    while "next" in pages[-1].get("paging", {}):
        assert len(pages) < 200, "paging does not end"
        pages.append(_ok(http.get(pages[-1]["paging"]["next"])))
    return pages


def _rows(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page["data"]]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _account_usage(response: httpx.Response, account_id: str) -> dict[str, Any]:
    use_cases = json.loads(response.headers["x-business-use-case-usage"])
    entry: dict[str, Any] = use_cases[account_id.removeprefix("act_")][0]
    return entry


def _util_pct(response: httpx.Response) -> float:
    return float(json.loads(response.headers["x-ad-account-usage"])["acc_id_util_pct"])


def _expected_rows(world: World, account_id: str, since: date, until: date) -> list[dict[str, Any]]:
    """Graph's daily ad-level rows for the account, straight from the world's state."""
    account = world.fb_accounts[account_id]
    rows: list[dict[str, Any]] = []
    for (ad_id, day), metrics in sorted(world.fb_insights.items(), key=lambda kv: kv[0][::-1]):
        ad = world.fb_ads[ad_id]
        if ad["account_id"] != account_id or not since <= day <= until:
            continue
        if not metrics["impressions"]:
            continue
        row = {
            "ad_id": ad_id,
            "ad_name": ad["name"],
            "adset_id": ad["adset_id"],
            "adset_name": world.fb_adsets[ad["adset_id"]]["name"],
            "campaign_id": ad["campaign_id"],
            "campaign_name": world.fb_campaigns[ad["campaign_id"]]["name"],
            "spend": str(metrics["spend"]),
            "impressions": str(metrics["impressions"]),
            "clicks": str(metrics["clicks"]),
            "account_currency": account["currency"],
            "account_id": account["account_id"],
            "date_start": day.isoformat(),
            "date_stop": day.isoformat(),
        }
        if metrics["leads"]:
            leads = str(metrics["leads"])
            row["actions"] = [
                {"action_type": "lead", "value": leads},
                {"action_type": "onsite_conversion.lead_grouped", "value": leads},
                {"action_type": "offsite_conversion.fb_pixel_lead", "value": leads},
                {"action_type": "link_click", "value": str(metrics["clicks"])},
            ]
        rows.append(row)
    return rows


def _spend_by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(row["ad_id"], row["date_start"]): row["spend"] for row in rows}


# -- objects ---------------------------------------------------------------------------------------


def test_accounts_differ_in_currency_and_zone(world: World, http: httpx.Client) -> None:
    fields = "id,account_id,name,currency,timezone_name,account_status"
    for account_id, account in world.fb_accounts.items():
        assert _ok(http.get(f"/{account_id}", params={"fields": fields})) == account
    assert len({a["currency"] for a in world.fb_accounts.values()}) > 1
    assert len({a["timezone_name"] for a in world.fb_accounts.values()}) > 1


def test_account_without_fields_and_with_an_unknown_field(http: httpx.Client) -> None:
    assert _ok(http.get("/act_101")) == {"id": "act_101"}
    error = _error(http.get("/act_101", params={"fields": "name,bogus"}))
    assert error["message"] == (
        "(#100) Tried accessing nonexisting field (bogus) on node type (AdAccount)"
    )


def test_unknown_account_is_100_33(http: httpx.Client) -> None:
    response = http.get("/act_999", params={"fields": "name"})
    error = _error(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["type"] == "GraphMethodException"
    assert error["message"] == MSG_UNSUPPORTED.format(method="get", id="act_999")
    assert "x-app-usage" in response.headers


EDGE_FIELDS = {
    "campaigns": ("fb_campaigns", "id,name,status,effective_status,updated_time,account_id"),
    "adsets": ("fb_adsets", "id,name,status,effective_status,updated_time,account_id,campaign_id"),
    "ads": (
        "fb_ads",
        "id,name,status,effective_status,updated_time,account_id,campaign_id,adset_id",
    ),
}


@pytest.mark.parametrize("edge", list(EDGE_FIELDS))
def test_object_pages_cover_each_once(world: World, http: httpx.Client, edge: str) -> None:
    table, fields = EDGE_FIELDS[edge]
    pages = _pages(http, f"/act_101/{edge}", {"fields": fields, "limit": 2})
    expected = [
        {
            **obj,
            "updated_time": "2026-09-01T00:00:00+0000",
            "account_id": "101",
        }
        for obj in sorted(getattr(world, table).values(), key=lambda o: o["id"])
        if obj["account_id"] == "act_101"
    ]
    assert _rows(pages) == expected
    assert len(pages) == -(-len(expected) // 2)
    assert "next" not in pages[-1]["paging"]
    for page in pages:
        for cursor in page["paging"]["cursors"].values():
            assert re.fullmatch(r"[A-Za-z0-9+/]+", cursor)


def test_updated_time_filtering(own: Own) -> None:
    world = _world()
    _, http = own(world=world)
    edited = next(ad for ad in world.fb_ads.values() if ad["account_id"] == "act_102")
    edited["updated_time"] = world.now  # an edit Ads Manager would make

    def ids(operator: str, value: datetime) -> list[str]:
        spec = [{"field": "updated_time", "operator": operator, "value": int(value.timestamp())}]
        params: dict[str, Any] = {"filtering": json.dumps(spec), "limit": 500}
        return [ad["id"] for ad in _ok(http.get("/act_102/ads", params=params))["data"]]

    account_ads = sorted(ad["id"] for ad in world.fb_ads.values() if ad["account_id"] == "act_102")
    assert ids("GREATER_THAN", START) == [edited["id"]]
    assert ids("LESS_THAN", START + timedelta(seconds=1)) == [
        ad_id for ad_id in account_ads if ad_id != edited["id"]
    ]
    assert ids("GREATER_THAN", START - timedelta(seconds=1)) == account_ads


# -- insights --------------------------------------------------------------------------------------


@pytest.mark.parametrize("account_id", ["act_101", "act_102", "act_103"])
def test_sync_insights_equal_the_world(world: World, http: httpx.Client, account_id: str) -> None:
    today = _today(world, account_id)
    since = today - timedelta(days=35)  # before the world's first day, too
    rows = _rows(_pages(http, f"/{account_id}/insights", _daily(since, today)))
    assert rows == _expected_rows(world, account_id, since, today)
    assert rows[-1]["date_start"] == today.isoformat()
    assert {"actions" in row for row in rows} == {True, False}  # days without leads, too


def test_today_follows_each_accounts_zone(world: World) -> None:
    # The premise of the test above: Almaty's today is Moscow's tomorrow at this hour.
    assert _today(world, "act_101") == date(2026, 10, 2)
    assert _today(world, "act_103") == date(2026, 10, 1)


def test_campaign_level_sums_the_ads(world: World, http: httpx.Client) -> None:
    today = _today(world, "act_102")
    since = today - timedelta(days=3)
    fields = "campaign_id,spend,impressions,clicks"
    params = _daily(since, today, level="campaign", fields=fields)
    metrics = ("spend", "impressions", "clicks")
    expected: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for row in _expected_rows(world, "act_102", since, today):
        sums = expected[(row["campaign_id"], row["date_start"])]
        for i, metric in enumerate(metrics):
            sums[i] += Decimal(row[metric])
    rows = _rows(_pages(http, "/act_102/insights", params))
    got = {(r["campaign_id"], r["date_start"]): [Decimal(r[m]) for m in metrics] for r in rows}
    assert got == expected
    assert all(r["spend"] == f"{Decimal(r['spend']):.2f}" for r in rows)


def test_defaults_are_account_level_last_30_days(world: World, http: httpx.Client) -> None:
    yesterday = _today(world, "act_103") - timedelta(days=1)
    since = yesterday - timedelta(days=29)
    daily = _expected_rows(world, "act_103", since, yesterday)
    assert _ok(http.get("/act_103/insights"))["data"] == [
        {
            "impressions": str(sum(int(r["impressions"]) for r in daily)),
            "spend": str(sum(Decimal(r["spend"]) for r in daily)),
            "date_start": since.isoformat(),
            "date_stop": yesterday.isoformat(),
        }
    ]


def test_async_report_run_lifecycle(
    world: World, sim: FacebookSimulator, http: httpx.Client
) -> None:
    today = _today(world, "act_102")
    since = today - timedelta(days=20)
    params = _daily(since, today)
    sync = _rows(_pages(http, "/act_102/insights", params))
    jobs_before = len(sim.jobs)
    run_id = _ok(http.post("/act_102/insights", data=params))["report_run_id"]
    assert len(sim.jobs) == jobs_before + 1
    seen = []
    for _ in range(3):
        # Results are refused until "Job Completed", even at 100%.
        assert _error(http.get(f"/{run_id}/insights"))["code"] == 2601
        status = _ok(http.get(f"/{run_id}"))
        seen.append((status["async_status"], status["async_percent_completion"]))
    assert seen == [("Job Not Started", 0), ("Job Running", 100), ("Job Completed", 100)]
    assert (status["id"], status["account_id"]) == (run_id, "102")
    assert (status["date_start"], status["date_stop"]) == (str(since), str(today))
    assert _rows(_pages(http, f"/{run_id}/insights", {"limit": 7})) == sync


def test_failed_report_runs(own: Own) -> None:
    sim, http = own(polls_until_done=4, max_cells_per_request=5)
    since = date(2026, 9, 10)
    small = _daily(since, since + timedelta(days=7))
    large = _daily(since, since + timedelta(days=9))

    def run(params: dict[str, Any]) -> tuple[str, list[str]]:
        run_id = _ok(http.post("/act_101/insights", json=params))["report_run_id"]
        return run_id, [_ok(http.get(f"/{run_id}"))["async_status"] for _ in range(4)]

    sim.fail_next_jobs(1)
    failed, statuses = run(small)
    assert statuses == ["Job Not Started", "Job Started", "Job Running", "Job Failed"]
    assert _error(http.get(f"/{failed}/insights"))["error_subcode"] == 1815107
    assert run(small)[1][-1] == "Job Completed"
    # 10 days x 6 ads = 60 cells, over ten times the sync limit of 5
    assert run(large)[1][-1] == "Job Failed"


def test_restated_spend_after_the_world_advances(own: Own) -> None:
    world = _world()
    _, http = own(world=world)
    today = _today(world, "act_101")
    params = _daily(today - timedelta(days=29), today)
    before = _spend_by_key(_rows(_pages(http, "/act_101/insights", params)))
    pulled_at = world.now
    world.advance(48)
    after = _spend_by_key(_rows(_pages(http, "/act_101/insights", params)))
    restated = {
        (r["ad_id"], r["date"].isoformat()): str(r["spend_after"])
        for r in world.fb_restatements
        if r["at"] >= pulled_at and (r["ad_id"], r["date"].isoformat()) in before
    }
    assert restated
    assert {key: after[key] for key in restated} == restated
    assert any(after[key] != before[key] for key in restated)
    settled = [k for k in before if k not in restated and k[1] < today.isoformat()]
    assert {k: after[k] for k in settled} == {k: before[k] for k in settled}


def test_too_much_data_is_http_500_code_1(own: Own) -> None:
    _, http = own(max_cells_per_request=60)
    since = date(2026, 9, 10)
    assert _ok(http.get("/act_101/insights", params=_daily(since, date(2026, 9, 19))))
    response = http.get("/act_101/insights", params=_daily(since, date(2026, 9, 20)))
    assert response.status_code == 500
    assert response.json() == {"error": {"code": 1, "message": MSG_REDUCE_DATA}}


def test_start_beyond_37_months_is_3018(world: World, http: httpx.Client) -> None:
    assert _today(world, "act_101") == date(2026, 10, 2)  # so the oldest start is 2023-09-02
    error = _error(http.get("/act_101/insights", params=_daily("2023-09-01", "2023-09-30")))
    assert error["code"] == 3018
    assert error["message"].endswith("cannot be beyond 37 months from the current date")
    assert _ok(http.get("/act_101/insights", params=_daily("2023-09-02", "2023-09-30"))) == {
        "data": []
    }


# -- token -----------------------------------------------------------------------------------------


def test_debug_token(world: World, server: SimServer) -> None:
    url = f"{server.url}/{VERSION}/debug_token"
    app_token = f"{world.fb_token['app_id']}|{APP_SECRET}"
    data = _ok(httpx.get(url, params={"input_token": TOKEN, "access_token": app_token}))["data"]
    token = world.fb_token
    assert data == {
        "app_id": token["app_id"],
        "type": "USER",
        "application": token["application"],
        "data_access_expires_at": int(token["data_access_expires_at"].timestamp()),
        "expires_at": int(token["expires_at"].timestamp()),
        "is_valid": True,
        "issued_at": data["issued_at"],
        "scopes": token["scopes"],
        "user_id": token["user_id"],
    }
    assert data["issued_at"] < data["expires_at"]
    wrong = f"{token['app_id']}|not-the-secret"
    error = _error(httpx.get(url, params={"input_token": TOKEN, "access_token": wrong}))
    assert (error["code"], error["message"]) == (190, MSG_APP_TOKEN_INVALID)


def test_debug_token_by_post_body_and_header_as_graph_takes_it(
    world: World, server: SimServer
) -> None:
    """No secret in the URL: the app token in the Authorization header, the inspected token in
    a POST form body with Graph's `method=GET` override; the same answer as the GET."""
    url = f"{server.url}/{VERSION}/debug_token"
    app_token = f"{world.fb_token['app_id']}|{APP_SECRET}"
    form = {"input_token": TOKEN, "method": "GET"}
    answer = _ok(httpx.post(url, data=form, headers={"Authorization": f"OAuth {app_token}"}))
    by_get = _ok(httpx.get(url, params={"input_token": TOKEN, "access_token": app_token}))
    assert answer == by_get and answer["data"]["is_valid"] is True
    wrong = {"Authorization": f"OAuth {world.fb_token['app_id']}|not-the-secret"}
    error = _error(httpx.post(url, data=form, headers=wrong))
    assert (error["code"], error["message"]) == (190, MSG_APP_TOKEN_INVALID)


def test_invalid_or_missing_token_is_190(server: SimServer) -> None:
    url = f"{server.url}/{VERSION}/act_101"
    for headers in ({"Authorization": "Bearer not-our-token"}, {}):
        error = _error(httpx.get(url, headers=headers))
        assert (error["code"], error["message"]) == (190, MSG_TOKEN_INVALID)
        assert error["type"] == "OAuthException" and error["fbtrace_id"]
        assert "error_subcode" not in error
    assert _ok(httpx.get(url, params={"access_token": TOKEN})) == {"id": "act_101"}


def test_expired_token(world: World, own: Own) -> None:
    sim, http = own()
    sim.expire_token()
    app_token = f"{world.fb_token['app_id']}|{APP_SECRET}"
    params = {"input_token": TOKEN, "access_token": app_token}
    data = _ok(http.get("/debug_token", params=params))["data"]
    assert data["is_valid"] is False
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, 463)
    assert data["expires_at"] == int(world.now.timestamp())
    response = http.get("/act_101/insights")
    error = _error(response)
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert error["message"].startswith("Error validating access token: Session has expired on")
    assert all(name in response.headers for name in USAGE_HEADERS)


# -- usage and throttling --------------------------------------------------------------------------


def test_usage_headers_rise_and_come_with_errors(world: World, http: httpx.Client) -> None:
    params = _daily(_today(world, "act_103"), _today(world, "act_103"))
    first = http.get("/act_103/insights", params=params)
    second = http.get("/act_103/insights", params=params)
    failed = http.get("/act_103/insights", params=_daily("2020-01-01", "2020-01-02"))
    assert _error(failed)["code"] == 3018
    for response in (first, second, failed):
        assert all(name in response.headers for name in USAGE_HEADERS)
        assert "x-fb-ads-insights-throttle" in response.headers
        assert _account_usage(response, "act_103")["type"] == "ads_insights"
    assert _util_pct(first) < _util_pct(second) < _util_pct(failed)
    objects = http.get("/act_103/campaigns")
    assert _account_usage(objects, "act_103")["type"] == "ads_management"
    assert "x-fb-ads-insights-throttle" not in objects.headers


def test_forced_usage_throttles_that_account_only(own: Own) -> None:
    world = _world()
    sim, http = own(world=world)
    sim.set_usage("act_101", 100, regain_minutes=17)
    throttled = http.get("/act_101/insights")
    error = _error(throttled)
    assert (error["code"], error["error_subcode"]) == (80004, 2446079)
    assert "too many calls to this ad-account" in error["message"]
    usage = _account_usage(throttled, "act_101")
    assert (usage["call_count"], usage["estimated_time_to_regain_access"]) == (100, 17)
    error = _error(http.get("/act_101/ads"))
    assert (error["code"], error["error_subcode"], error["is_transient"]) == (17, 2446079, True)
    other = http.get("/act_102/insights")
    assert _ok(other) and _account_usage(other, "act_102")["estimated_time_to_regain_access"] == 0
    assert sim.calls["act_101"] == 2
    world.advance(1)  # past the 17 minutes
    assert _ok(http.get("/act_101/insights"))


def test_a_client_calling_on_past_95_percent_hits_the_limit(world: World, own: Own) -> None:
    sim, http = own()
    sim.set_usage("act_102", 95)
    params = _daily(_today(world, "act_102"), _today(world, "act_102"))
    responses = [http.get("/act_102/insights", params=params) for _ in range(12)]
    statuses = [r.status_code for r in responses]
    refused = statuses.index(400)  # each insights call adds 0.5% of the default budget
    assert refused > 0 and set(statuses[refused:]) == {400}
    assert _account_usage(responses[refused - 1], "act_102")["call_count"] >= 95
    assert _error(responses[refused])["code"] == 80004
    assert sim.usage_pct("act_102") >= 100


# -- versions and injected Graph errors ------------------------------------------------------------


@pytest.mark.parametrize(("version", "code"), [("v24.0", 2635), ("v99.0", 2500)])
def test_other_api_versions(server: SimServer, version: str, code: int) -> None:
    response = httpx.get(f"{server.url}/{version}/act_101", headers=AUTH)
    assert _error(response)["code"] == code


ERROR_CODES = {  # name → (HTTP status, code, subcode), as the vendor notes list them
    "app_limit": (400, 4, None),
    "user_limit": (400, 17, 2446079),
    "page_limit": (400, 32, None),
    "api_rate_limit": (400, 613, 1487742),
    "account_limit": (400, 80004, 2446079),
    "token_invalid": (400, 190, None),
    "token_expired": (400, 190, 463),
    "object_missing": (400, 100, 33),
    "permission": (403, 200, None),
    "too_much_data": (500, 1, None),
    "transient": (500, 2, None),
    "start_too_old": (400, 3018, None),
    "report_not_ready": (400, 2601, 1815107),
}


def test_every_graph_error_is_listed() -> None:
    assert set(GRAPH_ERRORS) == set(ERROR_CODES)


@pytest.mark.parametrize("name", list(ERROR_CODES))
def test_injected_graph_errors(server: SimServer, http: httpx.Client, name: str) -> None:
    status, body = GRAPH_ERRORS[name]
    headers = usage_headers(
        app_pct=40, account_id="act_101", account_pct=100, regain_minutes=5, insights=True
    )
    server.faults.add(rf"/{VERSION}/act_101/insights", status=status, body=body, headers=headers)
    response = http.get("/act_101/insights")
    error = _error(response, status)
    assert (response.status_code, error["code"], error.get("error_subcode")) == ERROR_CODES[name]
    assert response.json() == body
    assert _account_usage(response, "act_101")["estimated_time_to_regain_access"] == 5
    assert _ok(http.get("/act_101/insights"))  # the fault was for one call

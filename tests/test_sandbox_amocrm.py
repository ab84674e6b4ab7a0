"""Tests for `sandbox/amocrm.py`, the simulator of AmoCRM's REST API v4 and its OAuth 2 server.

What is exercised: the simulator end to end, over HTTP on 127.0.0.1 (`SimServer`), with plain
httpx, reading a small live `World(seed=7, scale=0.3)`: page-number pagination and its `_links`,
the `updated_at` window and order, pipeline/status filters, 204 with an empty body, pipelines and
statuses, events (status moves and deletions), custom fields, the account's time zone, request
validation, both OAuth grants, the rate limiter and its block, and faults with vendor bodies.

What is simulated: AmoCRM as `shared/apis/amocrm.md` describes it, over the world's
`amocrm_leads`, `amocrm_deleted` and `amocrm_events`; nginx's HTML pages for 403/429/504.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sandbox.amocrm import (
    BODY_401,
    BODY_402,
    BODY_429,
    BODY_TOKEN_REVOKED,
    HTML_403,
    HTML_429,
    HTML_504,
    PAYMENT_FIELD_NAME,
    AmoCrmSimulator,
    contact_id,
)
from sandbox.names import OTHER_PIPELINES
from sandbox.server import SimServer
from sandbox.world import EXPRESS_PIPELINE, FLAGSHIP_PIPELINE, LOST, WON, World

CLIENT: dict[str, Any] = {
    "client_id": "sandbox-integration",
    "client_secret": "sandbox-secret",
    "redirect_uri": "https://etl.example/amocrm/callback",
}
ACCESS, REFRESH = "initial-access-token", "initial-refresh-token"
UNLIMITED = 1e9  # requests/s for the tests about content, which must never meet a 429


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, scale=0.3)


@contextmanager
def _serving(world: World, **options: Any) -> Iterator[tuple[AmoCrmSimulator, SimServer]]:
    sim = AmoCrmSimulator(world, **CLIENT, access_token=ACCESS, refresh_token=REFRESH, **options)
    with SimServer("amocrm", sim.app) as server:
        yield sim, server


def _client(server: SimServer, token: str = ACCESS) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[SimServer]:
    with _serving(world, rate_limit_per_second=UNLIMITED) as (_, sim_server):
        yield sim_server


@pytest.fixture(autouse=True)
def _no_faults_left(server: SimServer) -> Iterator[None]:
    yield
    server.faults.clear()


@pytest.fixture(scope="module")
def api(server: SimServer) -> Iterator[httpx.Client]:
    with _client(server) as client:
        yield client


def _scan(
    client: httpx.Client, path: str, key: str, params: list[tuple[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow `_links.next` from the first page: (rows, pages)."""
    rows: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    response = client.get(path, params=params)
    while response.status_code == 200:
        page = response.json()
        pages.append(page)
        rows += page["_embedded"][key]
        if "next" not in page["_links"]:
            break
        response = client.get(page["_links"]["next"]["href"])
    assert response.status_code in (200, 204)
    return rows, pages


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def _unix(lead: dict[str, Any], field: str) -> int:
    return int(lead[field].timestamp())


# -- leads: pages, windows, filters ---------------------------------------------------------------


def test_given_live_leads_when_paging_by_250_then_every_lead_comes_once(
    api: httpx.Client, server: SimServer, world: World
) -> None:
    rows, pages = _scan(api, "/api/v4/leads", "leads", [("limit", 250)])

    assert _ids(rows) == sorted(world.amocrm_leads)
    assert [len(p["_embedded"]["leads"]) for p in pages[:-1]] == [250] * (len(pages) - 1)
    assert [p["_page"] for p in pages] == list(range(1, len(pages) + 1))
    assert all("next" in p["_links"] for p in pages[:-1])
    assert "next" not in pages[-1]["_links"]
    assert pages[1]["_links"]["self"]["href"] == f"{server.url}/api/v4/leads?page=2&limit=250"
    past_the_end = api.get("/api/v4/leads", params={"limit": 250, "page": len(pages) + 1})
    assert (past_the_end.status_code, past_the_end.content) == (204, b"")


def test_given_no_limit_when_filtering_a_pipeline_then_50_rows_and_next_keeps_the_filter(
    api: httpx.Client,
) -> None:
    response = api.get("/api/v4/leads", params={"filter[pipeline_id][]": FLAGSHIP_PIPELINE})

    page = response.json()
    assert response.headers["content-type"] == "application/hal+json"
    assert len(page["_embedded"]["leads"]) == 50
    assert {lead["pipeline_id"] for lead in page["_embedded"]["leads"]} == {FLAGSHIP_PIPELINE}
    assert "filter%5Bpipeline_id%5D%5B%5D=7001002" in page["_links"]["next"]["href"]


def test_given_an_updated_at_window_when_ordered_desc_then_bounds_are_inclusive(
    api: httpx.Client, world: World
) -> None:
    by_time = sorted(world.amocrm_leads.values(), key=lambda d: (d["updated_at"], d["id"]))
    low, high = _unix(by_time[100], "updated_at"), _unix(by_time[700], "updated_at")
    params = [
        ("filter[updated_at][from]", low),
        ("filter[updated_at][to]", high),
        ("order[updated_at]", "desc"),
        ("limit", 250),
    ]

    rows, _ = _scan(api, "/api/v4/leads", "leads", params)

    expected = [d["id"] for d in by_time if low <= _unix(d, "updated_at") <= high]
    assert _ids(rows) == expected[::-1]
    assert {by_time[100]["id"], by_time[700]["id"]} <= set(_ids(rows))


def test_given_a_created_at_window_and_a_pipeline_when_ordered_desc_then_as_a_full_sort(
    api: httpx.Client, world: World
) -> None:
    by_created = sorted(world.amocrm_leads.values(), key=lambda d: (d["created_at"], d["id"]))
    low, high = _unix(by_created[50], "created_at"), _unix(by_created[600], "created_at")
    params = [
        ("filter[created_at][from]", low),
        ("filter[created_at][to]", high),
        ("filter[pipeline_id][]", EXPRESS_PIPELINE),
        ("order[updated_at]", "desc"),
        ("limit", 100),
    ]

    rows, _ = _scan(api, "/api/v4/leads", "leads", params)

    expected = sorted(
        (d for d in world.amocrm_leads.values()
         if low <= _unix(d, "created_at") <= high and d["pipeline_id"] == EXPRESS_PIPELINE),
        key=lambda d: (d["updated_at"], d["id"]),
        reverse=True,
    )  # fmt: skip
    assert rows and _ids(rows) == [d["id"] for d in expected]


def test_given_an_unchanged_world_when_paging_then_leads_are_sorted_once_until_one_changes() -> (
    None
):
    world = World(seed=7, scale=0.05)  # this test edits a lead: not the module's world
    params = {"order[updated_at]": "asc", "limit": 50}
    with _serving(world, rate_limit_per_second=UNLIMITED) as (sim, server), _client(server) as c:
        c.get("/api/v4/leads", params=params).raise_for_status()
        index = sim._sorted_leads.by("updated_at")
        c.get("/api/v4/leads", params={**params, "page": 2}).raise_for_status()
        assert sim._sorted_leads.by("updated_at") is index  # a page is a slice, not a sort
        edited = index[0]
        edited["updated_at"] = world.now
        last = c.get("/api/v4/leads", params={**params, "page": -(-len(index) // 50)}).json()
    assert last["_embedded"]["leads"][-1]["id"] == edited["id"]


def test_given_a_window_with_no_updates_when_listing_then_204_with_an_empty_body(
    api: httpx.Client, world: World
) -> None:
    future = int(world.now.timestamp()) + 86400
    response = api.get("/api/v4/leads", params={"filter[updated_at][from]": future})

    assert response.status_code == 204
    assert response.content == b""


def test_given_status_pairs_when_filtering_then_only_those_statuses_come(
    api: httpx.Client, world: World
) -> None:
    params = [
        ("filter[statuses][0][pipeline_id]", EXPRESS_PIPELINE),
        ("filter[statuses][0][status_id]", WON),
        ("filter[statuses][1][pipeline_id]", FLAGSHIP_PIPELINE),
        ("filter[statuses][1][status_id]", WON),
        ("limit", 250),
    ]

    rows, _ = _scan(api, "/api/v4/leads", "leads", params)

    won = sorted(i for i, d in world.amocrm_leads.items() if d["status_id"] == WON)
    assert won and _ids(rows) == won


def test_given_deleted_leads_when_listing_then_they_never_appear(
    api: httpx.Client, world: World
) -> None:
    rows, _ = _scan(api, "/api/v4/leads", "leads", [("limit", 250)])

    assert world.amocrm_deleted
    assert not set(world.amocrm_deleted) & set(_ids(rows))


# -- leads: fields --------------------------------------------------------------------------------


def _lead(api: httpx.Client, lead: dict[str, Any]) -> dict[str, Any]:
    """One lead as the API renders it, found by its exact `updated_at` second."""
    second = _unix(lead, "updated_at")
    params: dict[str, str | int] = {
        "filter[updated_at][from]": second,
        "filter[updated_at][to]": second,
        "with": "contacts",
    }
    rows = api.get("/api/v4/leads", params=params).json()["_embedded"]["leads"]
    return next(row for row in rows if row["id"] == lead["id"])


def test_given_a_lead_without_utm_when_rendered_then_custom_fields_are_null(
    api: httpx.Client, world: World
) -> None:
    lead = next(
        d
        for d in world.amocrm_leads.values()
        if d["status_id"] != WON and not any(d["utm"].values())
    )

    rendered = _lead(api, lead)

    assert rendered["custom_fields_values"] is None
    assert rendered["closed_at"] == (lead["closed_at"] and _unix(lead, "closed_at"))
    assert rendered["is_deleted"] is False
    assert rendered["_embedded"]["contacts"] == [{"id": contact_id(lead["id"]), "is_main": True}]


def test_given_a_won_lead_with_utm_when_rendered_then_tracking_fields_and_a_numeric_string(
    api: httpx.Client, world: World
) -> None:
    lead = next(
        d for d in world.amocrm_leads.values() if d["status_id"] == WON and d["utm"]["utm_source"]
    )

    rendered = _lead(api, lead)

    fields = {f["field_code"] or f["field_name"]: f for f in rendered["custom_fields_values"]}
    utm = {k.upper(): v for k, v in lead["utm"].items() if v is not None}
    assert {code: fields[code]["values"][0]["value"] for code in utm} == utm
    assert {fields[code]["field_type"] for code in utm} == {"tracking_data"}
    assert "UTM_TERM" not in fields  # the world never sets it: no empty field is rendered
    payment = fields[PAYMENT_FIELD_NAME]
    assert (payment["field_type"], payment["values"]) == (
        "numeric",
        [{"value": str(lead["price"])}],
    )
    assert rendered["status_id"] == WON
    assert rendered["closed_at"] == _unix(lead, "closed_at")
    assert rendered["updated_at"] == _unix(lead, "updated_at")


# -- pipelines, events, account -------------------------------------------------------------------


def test_given_the_account_when_listing_pipelines_then_each_has_unsorted_won_and_lost(
    api: httpx.Client,
) -> None:
    body = api.get("/api/v4/leads/pipelines").json()

    pipelines = body["_embedded"]["pipelines"]
    assert body["_total_items"] == len(pipelines) == 4
    assert [p["id"] for p in pipelines] == [EXPRESS_PIPELINE, FLAGSHIP_PIPELINE, *OTHER_PIPELINES]
    assert [p["is_main"] for p in pipelines] == [True, False, False, False]
    for pipeline in pipelines:
        statuses = {s["id"]: s for s in pipeline["_embedded"]["statuses"]}
        assert {WON, LOST} <= set(statuses)
        assert (statuses[WON]["sort"], statuses[LOST]["sort"]) == (10000, 11000)
        assert [s["type"] for s in statuses.values()].count(1) == 1
        assert {s["pipeline_id"] for s in statuses.values()} == {pipeline["id"]}


def test_given_deletions_when_listing_lead_deleted_events_then_they_match_the_world(
    api: httpx.Client, world: World
) -> None:
    params = [("filter[type][]", "lead_deleted"), ("filter[entity][]", "lead")]

    rows, _ = _scan(api, "/api/v4/events", "events", params)

    assert {e["entity_id"]: e["created_at"] for e in rows} == {
        lead_id: int(at.timestamp()) for lead_id, at in world.amocrm_deleted.items()
    }
    assert {(e["type"], e["entity_type"]) for e in rows} == {("lead_deleted", "lead")}
    assert all(e["value_after"] == e["value_before"] == [] for e in rows)


def test_given_a_created_at_window_when_listing_events_then_pages_of_100_in_time_order(
    api: httpx.Client, world: World
) -> None:
    events = world.amocrm_events
    low, high = (
        int(events[200]["created_at"].timestamp()),
        int(events[900]["created_at"].timestamp()),
    )
    params = [
        ("filter[type]", "lead_status_changed,lead_deleted"),
        ("filter[created_at][from]", low),
        ("filter[created_at][to]", high),
    ]

    rows, pages = _scan(api, "/api/v4/events", "events", params)

    expected = sorted(
        (e for e in events if low <= int(e["created_at"].timestamp()) <= high),
        key=lambda e: (e["created_at"], e["id"]),
    )
    assert [e["id"] for e in rows] == [e["id"] for e in expected]
    assert [len(p["_embedded"]["events"]) for p in pages[:-1]] == [100] * (len(pages) - 1)
    moves = [e for e in rows if e["type"] == "lead_status_changed"]
    assert moves
    truth = {e["id"]: e for e in expected}
    for event in moves:
        [before], [after] = event["value_before"], event["value_after"]
        assert before["lead_status"]["id"] == truth[event["id"]]["value_before"]
        assert after["lead_status"]["id"] == truth[event["id"]]["value_after"]
        lead = world.amocrm_leads.get(event["entity_id"])
        if lead is not None:  # a deleted lead's pipeline is checked by nothing but the stage
            assert after["lead_status"]["pipeline_id"] == lead["pipeline_id"]


def test_given_an_entity_other_than_lead_when_listing_events_then_204(api: httpx.Client) -> None:
    response = api.get("/api/v4/events", params={"filter[entity][]": "contact"})

    assert (response.status_code, response.content) == (204, b"")


def test_given_datetime_settings_when_reading_the_account_then_its_time_zone_comes(
    api: httpx.Client,
) -> None:
    account = api.get("/api/v4/account", params={"with": "datetime_settings"}).json()

    assert (account["country"], account["currency"]) == ("KZ", "KZT")
    assert account["_embedded"]["datetime_settings"]["timezone"] == "Asia/Almaty"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v4/leads", {"limit": 251}),
        ("/api/v4/leads", {"page": 0}),
        ("/api/v4/leads", {"order[name]": "asc"}),
        ("/api/v4/events", {"limit": 101}),
    ],
)
def test_given_invalid_paging_or_order_when_listing_then_400_validation_errors(
    api: httpx.Client, path: str, params: dict[str, Any]
) -> None:
    response = api.get(path, params=params)

    body = response.json()
    assert response.status_code == 400
    assert (body["title"], body["status"], body["detail"]) == (
        "Bad Request",
        400,
        "Request validation failed",
    )
    assert body["validation-errors"][0]["errors"][0]["path"] == next(iter(params))


# -- OAuth ----------------------------------------------------------------------------------------


def _grant(server: SimServer, **fields: str) -> httpx.Response:
    return httpx.post(f"{server.url}/oauth2/access_token", json={**CLIENT, **fields}, timeout=10)


def _works(server: SimServer, token: str) -> bool:
    with _client(server, token) as client:
        return client.get("/api/v4/account").status_code == 200


@pytest.fixture
def own(world: World) -> Iterator[tuple[AmoCrmSimulator, SimServer]]:
    """A simulator of this test's own, so its token and budget changes stay here."""
    with _serving(world, rate_limit_per_second=UNLIMITED) as pair:
        yield pair


def test_given_an_authorization_code_when_exchanged_then_a_pair_once(
    own: tuple[AmoCrmSimulator, SimServer],
) -> None:
    sim, server = own
    code = sim.issue_authorization_code()

    first = _grant(server, grant_type="authorization_code", code=code)
    again = _grant(server, grant_type="authorization_code", code=code)

    pair = first.json()
    assert first.status_code == 200
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", 86400)
    assert _works(server, pair["access_token"])
    assert sim.refresh_token == pair["refresh_token"]
    assert again.status_code == 400
    assert again.json()["hint"] == "Authorization code has been revoked"


def test_given_a_refresh_when_the_old_refresh_token_is_reused_then_the_exact_401(
    own: tuple[AmoCrmSimulator, SimServer],
) -> None:
    sim, server = own

    rotated = _grant(server, grant_type="refresh_token", refresh_token=REFRESH)
    reused = _grant(server, grant_type="refresh_token", refresh_token=REFRESH)

    pair = rotated.json()
    assert rotated.status_code == 200
    assert pair["refresh_token"] not in (REFRESH, pair["access_token"])
    assert (sim.refresh_count, sim.refresh_token) == (1, pair["refresh_token"])
    assert (reused.status_code, reused.json()) == (401, BODY_TOKEN_REVOKED)
    assert BODY_TOKEN_REVOKED["hint"] == "Token has been revoked"
    assert _works(server, ACCESS) and _works(server, pair["access_token"])
    assert _grant(
        server, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    ).is_success


def test_given_expired_access_tokens_when_calling_the_api_then_the_exact_401(
    own: tuple[AmoCrmSimulator, SimServer],
) -> None:
    sim, server = own
    sim.expire_access_tokens()

    with _client(server) as client:
        response = client.get("/api/v4/leads")

    assert (response.status_code, response.json()) == (401, BODY_401)
    assert httpx.get(f"{server.url}/api/v4/account").status_code == 401  # no header at all
    fresh = _grant(server, grant_type="refresh_token", refresh_token=REFRESH).json()
    assert _works(server, fresh["access_token"])


def test_given_a_wrong_client_secret_when_refreshing_then_400_and_nothing_rotates(
    own: tuple[AmoCrmSimulator, SimServer],
) -> None:
    sim, server = own

    response = _grant(
        server, grant_type="refresh_token", refresh_token=REFRESH, client_secret="wrong"
    )

    assert response.status_code == 400
    assert response.json()["hint"] == "Client authentication failed"
    assert (sim.refresh_count, sim.refresh_token) == (0, REFRESH)


# -- rate limit and block -------------------------------------------------------------------------


def test_given_the_7_per_second_limit_when_20_requests_burst_then_429s_of_both_kinds(
    world: World,
) -> None:
    with _serving(world) as (_, server), _client(server) as client:
        responses = [client.get("/api/v4/account") for _ in range(20)]

    statuses = [r.status_code for r in responses]
    assert statuses[:8] == [200] * 7 + [429]
    refused = [r for r in responses if r.status_code == 429]
    as_json = [r for r in refused if r.headers["content-type"] == "application/problem+json"]
    as_html = [r for r in refused if r.text == HTML_429]
    assert as_json and as_html and len(as_json) + len(as_html) == len(refused)
    assert all(r.json() == BODY_429 and r.headers["retry-after"] == "1" for r in as_json)
    assert all("retry-after" not in r.headers for r in as_html)
    admitted = [r.started for r in server.requests if r.status == 200]
    assert max(sum(t <= u < t + 1.0 for u in admitted) for t in admitted) <= 7


def test_given_repeated_429s_when_the_block_starts_then_403_html_everywhere_until_it_ends(
    world: World,
) -> None:
    # the block outlasts the two requests after it by far, even on a loaded machine
    options = {"rate_limit_per_second": 2, "block_after_429s": 3, "block_seconds": 1.5}
    with _serving(world, **options) as (sim, server), _client(server) as client:
        statuses = [client.get("/api/v4/account").status_code for _ in range(5)]
        blocked = client.get("/api/v4/leads")
        token = _grant(server, grant_type="refresh_token", refresh_token=REFRESH)
        time.sleep(1.6)
        after = client.get("/api/v4/account")

    assert statuses == [200, 200, 429, 429, 429]
    assert (blocked.status_code, blocked.text) == (403, HTML_403)
    assert "403 Forbidden" in blocked.text
    assert (token.status_code, token.text) == (403, HTML_403)
    assert sim.refresh_count == 0
    assert after.status_code == 200


# -- page shifts and faults -----------------------------------------------------------------------


def test_given_a_lead_edited_between_pages_when_paging_then_rows_skip_and_repeat() -> None:
    world = World(seed=7, scale=0.3)  # this test edits a lead: not the module's world
    before = sorted(world.amocrm_leads.values(), key=lambda d: (d["updated_at"], d["id"]))
    moved, skipped = before[0], before[250]

    def edit_the_first_lead(path: str) -> None:
        # Once page 1 is served, the lead it began with is edited and moves to the end.
        if path == "/api/v4/leads":
            moved["updated_at"] = world.now

    params = [("order[updated_at]", "asc"), ("limit", 250)]
    with _serving(world, rate_limit_per_second=UNLIMITED) as (sim, server), _client(server) as c:
        sim.after_request = edit_the_first_lead
        rows, _ = _scan(c, "/api/v4/leads", "leads", params)

    ids = _ids(rows)
    assert ids.count(moved["id"]) == 2
    assert skipped["id"] not in ids
    assert len(ids) == len(world.amocrm_leads)


@pytest.mark.parametrize(("status", "body"), [(402, BODY_402), (504, HTML_504)])
def test_given_an_injected_vendor_fault_when_listing_then_its_exact_body_once(
    api: httpx.Client, server: SimServer, status: int, body: dict[str, Any] | str
) -> None:
    server.faults.add(r"/api/v4/leads", status=status, body=body)

    failed = api.get("/api/v4/leads")
    recovered = api.get("/api/v4/leads")

    assert failed.status_code == status
    assert (failed.text if isinstance(body, str) else failed.json()) == body
    assert recovered.status_code == 200

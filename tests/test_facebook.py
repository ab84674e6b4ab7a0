"""The Facebook source end to end: the real client and assets against the sandbox's Graph API
simulator (accounts with their own currencies and time zones, cursor paging, sync and async
insights, usage headers that rise with calls, throttling codes, restatements as time moves, an
expiring token) on real PostgreSQL. Insights are compared with the world per ad per day."""

from __future__ import annotations

from datetime import date

import pytest

from resources.errors import SourceError
from resources.facebook import AccountThrottled, FacebookResource
from sandbox.stack import Sandbox
from tests.conftest import point_env_at, run_job, step_failures


@pytest.fixture
def env(monkeypatch, warehouse, fresh_sandbox):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return warehouse, fresh_sandbox


def refresh(instance, job: str = "refresh_facebook"):
    result = run_job(instance, job)
    assert result.success, step_failures(result)
    return result


def insights_metadata(result) -> dict:
    """The insights step's own materialization (others report days loaded outside its range)."""
    events = result.asset_materializations_for_node("raw_facebook_insights")
    return next(e.metadata for e in events if "rows_read" in e.metadata)


def stored_insights(warehouse) -> dict[tuple[str, date], tuple]:
    rows = warehouse.fetch_all(
        "SELECT ad_id, date, spend, impressions, clicks, leads, account_currency"
        " FROM raw_facebook.ad_insights_daily"
    )
    return {(r[0], r[1]): r[2:] for r in rows}


def world_insights(sandbox: Sandbox, days: set[date] | None = None) -> dict:
    world = sandbox.world
    return {
        key: (row["spend"], row["impressions"], row["clicks"], row["leads"],
              world.fb_accounts[world.fb_ads[key[0]]["account_id"]]["currency"])
        for key, row in world.fb_insights.items()
        if row["impressions"] and (days is None or key[1] in days)
    }  # fmt: skip


def graph_throttle_errors(sandbox: Sandbox) -> list:
    return [r for r in sandbox.servers["facebook"].requests if r.status in (400, 403) and
            not r.path.endswith("debug_token")]  # fmt: skip


def test_given_first_run_when_backfilled_then_every_ad_day_equals_truth(env, dagster_instance):
    warehouse, sandbox = env
    result = refresh(dagster_instance)
    assert stored_insights(warehouse) == world_insights(sandbox)
    zones = dict(
        warehouse.fetch_all("SELECT DISTINCT account_id, account_timezone FROM "
                            "raw_facebook.ad_insights_daily")
    )  # fmt: skip
    assert zones == {a: v["timezone_name"] for a, v in sandbox.world.fb_accounts.items()}
    assert warehouse.fetch_all("SELECT count(*) FROM raw_facebook.ads")[0][0] == len(
        sandbox.world.fb_ads
    )
    token = warehouse.fetch_all("SELECT is_valid, scopes FROM raw_facebook.token_info")
    assert token == [(True, sandbox.world.fb_token["scopes"])]
    assert insights_metadata(result)["rows_inserted"].value == len(world_insights(sandbox))
    assert graph_throttle_errors(sandbox) == []


def spend_moves(warehouse, sandbox: Sandbox) -> dict[tuple[str, date], object]:
    """Per account and day: the world's spend minus the stored spend, where they differ."""
    stored = stored_insights(warehouse)
    moves: dict[tuple[str, date], object] = {}
    for (ad, day), row in sandbox.world.fb_insights.items():
        old = stored.get((ad, day))
        if old is not None and old[0] != row["spend"]:
            key = (sandbox.world.fb_ads[ad]["account_id"], day)
            moves[key] = moves.get(key, 0) + row["spend"] - old[0]
    return {k: v for k, v in moves.items() if v}


def test_given_days_pass_with_hourly_and_daily_runs_then_equal_and_restatements_recorded(
    env, dagster_instance
):
    warehouse, sandbox = env
    refresh(dagster_instance)
    for _ in range(2):
        sandbox.advance(24)
        refresh(dagster_instance)  # hourly: yesterday and today per account
        stored = stored_insights(warehouse)
        last_two = set(sorted({d for _, d in sandbox.world.fb_insights})[-2:])
        assert all(stored[k] == v for k, v in world_insights(sandbox, last_two).items())
        expected = spend_moves(warehouse, sandbox)
        last_log = warehouse.fetch_all("SELECT coalesce(max(id), 0) FROM ops.facebook_restatements")
        refresh(dagster_instance, "facebook_restatement")
        assert stored_insights(warehouse) == world_insights(sandbox)
        logged = warehouse.fetch_all(
            "SELECT account_id, date, sum(spend_after - spend_before) FROM"
            " ops.facebook_restatements WHERE id > %s GROUP BY 1, 2",
            (last_log[0][0],),
        )
        assert expected and {(a, d): moved for a, d, moved in logged} == expected


def test_given_usage_over_75_percent_then_client_slows_down_and_provokes_no_error(env, monkeypatch):
    _, sandbox = env
    sandbox.facebook.set_usage("act_101", 85)
    client = FacebookResource(**FacebookResource.bound(), slow_down_seconds=0.2).open()
    with client:
        pages = list(client.objects("act_101", "ads", None)) + list(
            client.objects("act_101", "campaigns", None)
        )
    assert pages and client.stats.throttled_waits >= 1
    assert client.stats.max_usage_pct == pytest.approx(85, abs=1)
    assert graph_throttle_errors(sandbox) == []


def test_given_usage_over_95_percent_then_breaker_opens_before_any_throttling_error(env):
    _, sandbox = env
    sandbox.facebook.set_usage("act_101", 96, regain_minutes=30)
    client = FacebookResource(**FacebookResource.bound(), max_breaker_wait_seconds=5).open()
    with client:
        client.account_info("act_101")  # the headers warn: 96 %
        with pytest.raises(AccountThrottled):
            client.account_info("act_101")
        assert client.account_info("act_102")["currency"] == "KZT"  # the others go on
    assert graph_throttle_errors(sandbox) == []


def test_given_throttling_error_then_that_account_skips_and_the_others_load(env, dagster_instance):
    warehouse, sandbox = env
    sandbox.facebook.set_usage("act_103", 100, regain_minutes=45)
    result = run_job(dagster_instance, "refresh_facebook")
    assert not result.success
    failure = step_failures(result)["raw_facebook_insights"]
    assert failure.startswith("Facebook: rate limit reached for act_103 (45 min)")
    accounts = {r[0] for r in warehouse.fetch_all(
        "SELECT DISTINCT account_id FROM raw_facebook.ad_insights_daily")}  # fmt: skip
    assert accounts == {"act_101", "act_102"}
    expected = {k: v for k, v in world_insights(sandbox).items()
                if sandbox.world.fb_ads[k[0]]["account_id"] != "act_103"}  # fmt: skip
    assert stored_insights(warehouse) == expected


def test_given_failed_async_jobs_and_reduce_data_then_split_and_exact(env, dagster_instance):
    warehouse, sandbox = env
    sandbox.facebook.fail_next_jobs(2)
    result = refresh(dagster_instance)
    meta = insights_metadata(result)
    assert meta["failed_jobs_split"].value == 2
    assert stored_insights(warehouse) == world_insights(sandbox)
    sandbox.advance(24)
    sandbox.facebook.max_cells_per_request = 6  # one day of the largest account, no more
    result = refresh(dagster_instance)
    meta = insights_metadata(result)
    assert meta["split_requests"].value >= 3
    last_two = sorted({d for _, d in sandbox.world.fb_insights})[-2:]
    stored = stored_insights(warehouse)
    for key, value in world_insights(sandbox, set(last_two)).items():
        assert stored[key] == value


def test_given_async_jobs_take_several_polls_then_polled_with_backoff(env):
    _, sandbox = env
    sandbox.facebook.polls_until_done = 3
    client = FacebookResource(**FacebookResource.bound(), poll_first_seconds=0.05).open()
    days = sorted({d for _, d in sandbox.world.fb_insights})
    with client:
        rows = [r for page in client.insights_async("act_102", days[0], days[-1]) for r in page]
    polls = [r for r in sandbox.servers["facebook"].requests
             if r.method == "GET" and r.path.count("/") == 2 and "act_" not in r.path]  # fmt: skip
    assert len(polls) == 3
    assert len(rows) == sum(
        1 for (ad, _), v in sandbox.world.fb_insights.items()
        if v["impressions"] and sandbox.world.fb_ads[ad]["account_id"] == "act_102"
    )  # fmt: skip


def test_given_expired_token_then_facebook_stops_with_clear_message_and_others_load(
    env, dagster_instance
):
    warehouse, sandbox = env
    sandbox.facebook.expire_token()
    failed = run_job(dagster_instance, "refresh_facebook")
    assert not failed.success
    messages = set(step_failures(failed).values())
    assert len(messages) == 1
    message = messages.pop()
    assert message.startswith(
        "Facebook: the token in FACEBOOK_ACCESS_TOKEN is no longer valid (code 190/463: "
        "Error validating access token: Session has expired"
    )
    assert message.endswith(
        "Generate a new long-lived or system-user token with ads_read and put it in "
        "FACEBOOK_ACCESS_TOKEN."
    )
    assert sandbox.fb_token not in message
    refresh(dagster_instance, "refresh_supabase_main")


def test_given_missing_account_list_then_message_names_the_variable(env, monkeypatch):
    monkeypatch.delenv("FACEBOOK_AD_ACCOUNT_IDS")
    with pytest.raises(SourceError) as caught:
        FacebookResource(**FacebookResource.bound()).accounts()
    assert caught.value.message == (
        "Facebook: FACEBOOK_AD_ACCOUNT_IDS is not set (a comma list of ad account ids, e.g. "
        "act_123,act_456)."
    )

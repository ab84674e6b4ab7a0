"""Facebook throttling one account with no estimate (code 4, persistent, no usage headers: what
the sandbox's fault injection answers) on the sandbox's Graph simulator and real PostgreSQL: the
account's breaker opens for Graph's short window a bounded number of times, then the account is
skipped with one line and the run fails after the other account's rows are committed. Graph's
minutes run on the fast vendor clock of tests/test_facebook_backfill.py."""

import re

import pytest

import resources.facebook
from resources.facebook import NO_ESTIMATE_WAITS, NO_ESTIMATE_WINDOW_SECONDS
from resources.warehouse import WarehouseResource
from sandbox.facebook import GRAPH_ERRORS
from sandbox.stack import Sandbox
from tests.conftest import point_env_at, run_job, step_failures
from tests.test_facebook import stored_insights, world_insights
from tests.test_facebook_backfill import TWO_ACCOUNTS, FastClock

SPEED = 60.0  # vendor seconds per real second


def test_given_code_4_without_an_estimate_then_bounded_waits_skip_the_account_others_commit(
    monkeypatch: pytest.MonkeyPatch,
    warehouse: WarehouseResource,
    fresh_sandbox: Sandbox,
    dagster_instance,
) -> None:
    sandbox = fresh_sandbox
    point_env_at(monkeypatch, warehouse, sandbox)
    monkeypatch.setenv("FACEBOOK_AD_ACCOUNT_IDS", TWO_ACCOUNTS)
    FastClock.sandbox, FastClock.speed = sandbox, SPEED
    monkeypatch.setattr(resources.facebook, "VendorClock", FastClock)
    status, body = GRAPH_ERRORS["app_limit"]  # code 4
    sandbox.servers["facebook"].faults.add(r"/v[\d.]+/act_101(/.*)?", status=status, body=body,
                                           times=-1)  # fmt: skip

    server = sandbox.servers["facebook"]
    first = len(server.requests)
    result = run_job(dagster_instance, "refresh_facebook")

    assert not result.success
    failures = step_failures(result)
    assert set(failures.values()) == {
        "Facebook: rate limit reached for act_101 (no estimate from Facebook; still throttled "
        f"after {NO_ESTIMATE_WAITS} waits of {NO_ESTIMATE_WINDOW_SECONDS:.0f} s); they load on "
        "a later run once Facebook lets them call again. Other accounts loaded."
    }
    # each failing asset's client asked for act_101 once, then once after each bounded wait
    throttled = [r.started for r in server.requests[first:] if "act_101" in r.path]
    assert len(throttled) == (NO_ESTIMATE_WAITS + 1) * len(failures)
    waited = (max(throttled) - min(throttled)) * SPEED
    assert NO_ESTIMATE_WAITS * NO_ESTIMATE_WINDOW_SECONDS <= waited < 13 * 60
    accounts = {r[0] for r in warehouse.fetch_all(
        "SELECT DISTINCT account_id FROM raw_facebook.ad_insights_daily")}  # fmt: skip
    assert accounts == {"act_102"}
    expected = {k: v for k, v in world_insights(sandbox).items()
                if sandbox.world.fb_ads[k[0]]["account_id"] == "act_102"}  # fmt: skip
    assert {k: v for k, v in stored_insights(warehouse).items() if k in expected} == expected
    assert not re.search("act_101", str(stored_insights(warehouse)))

"""The AmoCRM source end to end: the real client and assets against the sandbox's AmoCRM v4
simulator (HAL pages, 204 on nothing, OAuth with rotating refresh tokens, a 7/s rate limit that
answers 429 then blocks with 403, and the report's 402) on real PostgreSQL. Loads are compared
with the world's deals field by field; failures with the exact sentence the operator sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from contract.amocrm_records import CustomField, CustomFieldValue, utm_values
from resources.amocrm import RateLimiter, account_limiter
from sandbox.amocrm import BODY_402, BODY_429, HTML_403, HTML_429
from sandbox.stack import Sandbox
from sandbox.truth import compare_amocrm
from sandbox.world import WON
from tests.conftest import ROOT, point_env_at, run_job, step_failures

STALE = r"Data from AmoCRM stays as of \d{4}-\d\d-\d\d \d\d:\d\d UTC\."


@pytest.fixture
def env(monkeypatch, warehouse, fresh_sandbox):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return warehouse, fresh_sandbox


def refresh_amocrm(instance):
    result = run_job(instance, "refresh_amocrm")
    assert result.success, step_failures(result)
    return result


def api_requests(sandbox: Sandbox) -> list:
    return [r for r in sandbox.servers["amocrm"].requests if r.path.startswith("/api/v4")]


def test_given_sandbox_when_loaded_then_leads_statuses_and_won_deals_equal_truth(
    env, dagster_instance
):
    warehouse, sandbox = env
    refresh_amocrm(dagster_instance)
    assert compare_amocrm(warehouse, sandbox.world) == []
    won = dict(
        warehouse.fetch_all(
            "SELECT pipeline_id, count(*) FROM raw_amocrm.leads WHERE status_id = %s"
            " AND _deleted_at IS NULL GROUP BY 1",
            (WON,),
        )
    )
    expected: dict[int, int] = {}
    for deal in sandbox.world.amocrm_leads.values():
        if deal["status_id"] == WON:
            expected[deal["pipeline_id"]] = expected.get(deal["pipeline_id"], 0) + 1
    assert won == expected
    per_pipeline = warehouse.fetch_all(
        "SELECT p.id, array_agg(s.id ORDER BY s.id) FROM raw_amocrm.pipelines p"
        " JOIN raw_amocrm.statuses s ON s.pipeline_id = p.id GROUP BY p.id"
    )
    assert per_pipeline and all({142, 143} <= set(ids) for _, ids in per_pipeline)
    assert warehouse.fetch_all("SELECT timezone FROM raw_amocrm.account") == [("Asia/Almaty",)]


def test_given_time_moves_when_run_again_then_incremental_equal_and_deletions_marked(
    env, dagster_instance
):
    warehouse, sandbox = env
    refresh_amocrm(dagster_instance)
    loaded = {r[0] for r in warehouse.fetch_all("SELECT id FROM raw_amocrm.leads")}
    cursor = warehouse.get_cursor("amocrm", "leads")["updated_at"]
    before = len(sandbox.world.amocrm_deleted)
    sandbox.advance(72)
    assert len(sandbox.world.amocrm_deleted) > before
    sandbox.servers["amocrm"].requests.clear()
    refresh_amocrm(dagster_instance)
    assert compare_amocrm(warehouse, sandbox.world) == []
    marked = {
        r[0]
        for r in warehouse.fetch_all(
            "SELECT id FROM raw_amocrm.leads WHERE _deleted_at IS NOT NULL"
        )
    }
    assert marked == loaded & set(sandbox.world.amocrm_deleted)
    lead_queries = [r.query for r in api_requests(sandbox) if r.path == "/api/v4/leads"]
    froms = [int(m) for q in lead_queries for m in re.findall(r"5Bfrom%5D=(\d+)", q)]
    assert froms and min(froms) >= cursor - 15 * 60


def test_given_leads_updated_between_page_requests_then_none_lost_none_duplicated(
    env, dagster_instance
):
    warehouse, sandbox = env
    world = sandbox.world
    oldest = sorted(world.amocrm_leads.values(), key=lambda d: (d["updated_at"], d["id"]))[:40]
    state = {"pages": 0}

    def touch_leads_between_pages(path: str) -> None:
        if path != "/api/v4/leads":
            return
        state["pages"] += 1
        if state["pages"] == 1:
            # leads already served move to the end of the updated_at order: a plain page walk
            # would now skip as many unseen leads as moved
            for deal in oldest:
                deal["updated_at"] = world.now - timedelta(seconds=30)

    sandbox.amocrm.after_request = touch_leads_between_pages
    refresh_amocrm(dagster_instance)
    assert state["pages"] > 2
    assert compare_amocrm(warehouse, world) == []


def test_given_nothing_matches_when_amocrm_answers_204_then_success_with_zero_rows(
    env, dagster_instance
):
    warehouse, sandbox = env
    sandbox.servers["amocrm"].faults.add(r"/api/v4/(leads|events)", status=204, times=-1)
    refresh_amocrm(dagster_instance)
    assert warehouse.fetch_all("SELECT count(*) FROM raw_amocrm.leads") == [(0,)]
    assert {r.status for r in api_requests(sandbox) if r.path == "/api/v4/leads"} == {204}


def test_given_access_token_expires_mid_run_then_one_refresh_and_the_run_completes(
    env, dagster_instance
):
    warehouse, sandbox = env
    calls = {"n": 0}

    def expire_after_third_call(path: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            sandbox.amocrm.expire_access_tokens()

    sandbox.amocrm.after_request = expire_after_third_call
    refresh_amocrm(dagster_instance)
    assert sandbox.amocrm.refresh_count == 1
    stored = warehouse.fetch_all("SELECT refresh_token, refreshes FROM ops.oauth_tokens")
    assert stored == [(sandbox.amocrm.refresh_token, 1)]
    assert compare_amocrm(warehouse, sandbox.world) == []


def test_given_a_crash_right_after_a_refresh_then_the_stored_refresh_token_still_works(
    env, dagster_instance
):
    warehouse, sandbox = env
    server = sandbox.servers["amocrm"]
    sandbox.amocrm.expire_access_tokens()

    def fail_the_call_after_the_401(path: str) -> None:
        sandbox.amocrm.after_request = None
        # a terminal answer ends the run at once, as a crash would, with no retries
        server.faults.add(r"/api/v4/.*", status=402, body=BODY_402, times=-1)

    sandbox.amocrm.after_request = fail_the_call_after_the_401
    crashed = run_job(dagster_instance, "refresh_amocrm")
    assert not crashed.success
    assert sandbox.amocrm.refresh_count == 1  # the refresh happened, then the run died
    server.faults.clear()
    sandbox.amocrm.expire_access_tokens()
    refresh_amocrm(dagster_instance)
    assert sandbox.amocrm.refresh_count == 2
    assert compare_amocrm(warehouse, sandbox.world) == []


def test_given_a_rotated_refresh_token_is_reused_then_one_clear_message(env, dagster_instance):
    warehouse, sandbox = env
    sandbox.amocrm.expire_access_tokens()
    refresh_amocrm(dagster_instance)
    warehouse.fetch_all(
        "UPDATE ops.oauth_tokens SET refresh_token = %s RETURNING 1",
        (f"sandbox-refresh-{sandbox.world.seed}",),  # the first token, already spent
    )
    sandbox.amocrm.expire_access_tokens()
    result = run_job(dagster_instance, "refresh_amocrm")
    assert not result.success
    messages = set(step_failures(result).values())
    assert messages == {
        "AmoCRM refused the OAuth refresh_token grant (HTTP 401: Token has been revoked). The "
        "stored refresh token can no longer be used; authorize the integration again with "
        "`python -m resources.amocrm authorize CODE` (a new code from the integration's settings "
        "in AmoCRM), or check AMOCRM_CLIENT_ID, AMOCRM_CLIENT_SECRET and AMOCRM_REDIRECT_URI."
    }


def test_given_429_storm_at_the_real_limit_then_ridden_out_and_never_over_7_per_second(
    monkeypatch, warehouse, pg_server, dagster_instance
):
    with Sandbox(pg_server, seed=3, scale=0.05, prefix="ratelimit") as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        monkeypatch.delenv("AMOCRM_MAX_RPS")
        server = sandbox.servers["amocrm"]
        server.faults.add(r"/api/v4/events", status=429, body=BODY_429, times=2,
                          headers={"Retry-After": "1"})  # fmt: skip
        server.faults.add(r"/api/v4/leads", status=429, body=HTML_429, times=1)
        refresh_amocrm(dagster_instance)
        assert compare_amocrm(warehouse, sandbox.world) == []
        served = [r for r in api_requests(sandbox) if not r.fault]
        assert [r for r in served if r.status in (429, 403)] == []  # the limiter never tripped
        starts = [r.started for r in api_requests(sandbox)]
        assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 7
        assert len(served) > 10


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            402,
            BODY_402,
            re.escape(
                "AmoCRM answered 402 Payment Required: the account's subscription has expired; "
                "renew it. "
            )
            + STALE,
        ),
        (
            403,
            HTML_403,
            re.escape(
                "AmoCRM answered 403 Forbidden: the account or this server's IP address is "
                "blocked (usually after repeated 429s); ask AmoCRM support to lift the block. "
            )
            + STALE,
        ),
    ],
)
def test_given_amocrm_refuses_when_hourly_run_then_clear_message_no_retry_others_refresh(
    env, dagster_instance, status, body, expected
):
    warehouse, sandbox = env
    refresh_amocrm(dagster_instance)
    sandbox.advance(2)
    server = sandbox.servers["amocrm"]
    server.faults.add(r"/api/v4/.*", status=status, body=body, times=-1)
    before = len(api_requests(sandbox))
    failed = run_job(dagster_instance, "refresh_amocrm")
    assert not failed.success
    messages = set(step_failures(failed).values())
    assert len(messages) == 1 and re.fullmatch(expected, messages.pop())
    # one request per asset that ran (the reference and events assets; leads is skipped), and
    # the subscription check's one probe, which says why although the load failed
    assert len(api_requests(sandbox)) - before == 3
    for job in ("refresh_supabase_main", "rebuild_models"):
        assert run_job(dagster_instance, job).success
    state = warehouse.fetch_all(
        "SELECT DISTINCT ON (source) source, succeeded FROM ops.source_attempts"
        " ORDER BY source, attempted_at DESC"
    )
    assert dict(state) == {"amocrm": False, "supabase_main": True}


def test_given_an_authorization_code_when_authorize_command_then_pair_stored_and_usable(
    env, dagster_instance
):
    warehouse, sandbox = env
    code = sandbox.amocrm.issue_authorization_code()
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "resources.amocrm", "authorize", code],
        cwd=ROOT, env=env_vars, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "AmoCRM authorized: the token pair is stored in ops.oauth_tokens."
    stored = warehouse.fetch_all("SELECT refresh_token FROM ops.oauth_tokens")
    assert stored == [(sandbox.amocrm.refresh_token,)]
    refresh_amocrm(dagster_instance)
    again = subprocess.run(
        [sys.executable, "-m", "resources.amocrm", "authorize", code],
        cwd=ROOT, env=env_vars, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.strip().startswith(
        "AmoCRM refused the OAuth authorization_code grant (HTTP 400: Authorization code has "
        "been revoked)."
    )
    assert "Traceback" not in again.stderr


def test_given_a_long_lived_token_without_refresh_when_it_expires_then_clear_message(
    env, dagster_instance, monkeypatch
):
    _, sandbox = env
    monkeypatch.delenv("AMOCRM_REFRESH_TOKEN")
    refresh_amocrm(dagster_instance)
    sandbox.amocrm.expire_access_tokens()
    failed = run_job(dagster_instance, "refresh_amocrm")
    assert set(step_failures(failed).values()) == {
        "AmoCRM answered 401 Unauthorized and there is no refresh token (a long-lived token has "
        "expired or was revoked): put a new token in AMOCRM_ACCESS_TOKEN and clear "
        "ops.oauth_tokens, or authorize again with `python -m resources.amocrm authorize CODE`."
    }


def test_given_a_504_on_a_big_page_then_retried_with_a_smaller_limit(env, dagster_instance):
    warehouse, sandbox = env
    sandbox.servers["amocrm"].faults.add(r"/api/v4/leads", status=504, body="<html>504</html>")
    refresh_amocrm(dagster_instance)
    limits = [
        re.search(r"limit=(\d+)", r.query).group(1)  # type: ignore[union-attr]
        for r in api_requests(sandbox)
        if r.path == "/api/v4/leads"
    ]
    assert limits[:2] == ["250", "125"]
    assert compare_amocrm(warehouse, sandbox.world) == []


def test_utm_fields_by_code_then_name_then_override():
    fields = [
        CustomField(field_id=1, field_name="utm_source", field_code="UTM_SOURCE",
                    values=[CustomFieldValue(value="facebook")]),
        CustomField(field_id=2, field_name="utm_campaign", field_code=None,
                    values=[CustomFieldValue(value="aida_1")]),
        CustomField(field_id=3, field_name="Источник", field_code=None,
                    values=[CustomFieldValue(value="instagram")]),
        CustomField(field_id=4, field_name="Сумма оплаты", field_code=None,
                    values=[CustomFieldValue(value="46333")]),
    ]  # fmt: skip
    assert utm_values(fields, {}) == ["facebook", None, "aida_1", None, None]
    assert utm_values(fields, {"utm_source": "Источник"}) == [
        "instagram",
        None,
        "aida_1",
        None,
        None,
    ]
    assert utm_values(None, {}) == [None] * 5


def _eighth_start_after_first(limiter: RateLimiter, answered: bool) -> float:
    """Seconds from the first of seven requests to the eighth's start, the seven answered at once
    or all still in flight."""
    release, starts = threading.Event(), list[float]()

    def request() -> None:
        with limiter.start():
            starts.append(time.monotonic())
            if not answered:
                release.wait()

    threads = [threading.Thread(target=request) for _ in range(7)]
    for thread in threads:
        thread.start()
        if answered:
            thread.join()
    while len(starts) < 7:
        time.sleep(0.001)
    with limiter.start():
        eighth = time.monotonic()
    release.set()
    for thread in threads:
        thread.join()
    return eighth - starts[0]


def test_given_clients_of_one_account_one_after_another_then_their_requests_share_its_second():
    """A run's assets open a client each: the next one's first request counts the last one's."""
    url = "https://school.amocrm.ru"
    first, started = account_limiter(url, 1000.0), time.monotonic()
    for _ in range(7):
        with first.start():
            pass
    with account_limiter("https://other.amocrm.ru", 1000.0).start():
        assert time.monotonic() - started < 1.0  # another account's second is its own
    with account_limiter(url, 1000.0).start():
        assert time.monotonic() - started >= 1.0


def test_given_seven_in_flight_then_the_eighth_waits_out_their_jitter_once_answered_a_second():
    # an average far above the limit: the bounds on arrival alone hold the eighth back
    jitter = RateLimiter.ARRIVAL_JITTER_SECONDS
    assert 1.0 + jitter <= _eighth_start_after_first(RateLimiter(1000.0), answered=False)
    assert 1.0 <= _eighth_start_after_first(RateLimiter(1000.0), answered=True) < 1.0 + jitter

"""AmoCRM's single-use refresh token under kills and a flaky token endpoint, on the sandbox's
AmoCRM simulator (which spends the refresh token the moment it answers a grant, as AmoCRM does)
and real PostgreSQL.

The client that refreshes runs in a child process (the token path only: it asks for the account
with an expired access token) and is SIGKILLed at a moment the simulator or the warehouse shows:
while AmoCRM has not handled the grant yet (a 503 answer held for seconds), right after the new
pair is stored, or right after the simulator rotated the pair and before its answer leaves. Then
the real refresh_amocrm job runs. The first two moments recover without `authorize`; the last
cannot by any client (the new pair existed only in the lost answer), so the next run says so in
one sentence with the fix, and a connection dropped during the answer says the same. A token
endpoint that keeps answering 503 is a transient error that spends nothing."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace

import pytest

from resources.amocrm import TOKEN_PATH, AmoCrmResource, authorize
from resources.errors import SourceError
from resources.warehouse import WarehouseResource
from sandbox.stack import Sandbox
from sandbox.truth import compare_amocrm
from tests.conftest import ROOT, point_env_at, run_job, step_failures

# the token path of a run, alone: asks for the account, refreshing first on a 401
CLIENT = """
import os
from resources.amocrm import AmoCrmResource
from resources.warehouse import WarehouseResource
warehouse = WarehouseResource(url=os.environ["WAREHOUSE_URL"])
with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
    client.get("/api/v4/account")
"""
LOST = re.compile(
    r"AmoCRM calls the stored refresh token already used \(Token has been revoked\) because the "
    r"token refresh started at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC never received or stored "
    r"AmoCRM's answer \(its process was stopped or its connection dropped after AmoCRM had "
    r"issued the new pair, which only that answer carried\), so the integration's token pair is "
    r"lost: authorize the integration again with `python -m resources.amocrm authorize CODE` "
    r"\(a new code from the integration's settings in AmoCRM\)\."
)


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, warehouse: WarehouseResource, fresh_sandbox: Sandbox
) -> tuple[WarehouseResource, Sandbox]:
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return warehouse, fresh_sandbox


def start_client() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(client: subprocess.Popen, moment: Callable[[], bool], settle: float = 0.0) -> None:
    """SIGKILL `client` as soon as `moment()` holds (`settle` seconds later)."""
    deadline = time.monotonic() + 60
    while not moment():
        assert client.poll() is None and time.monotonic() < deadline, "the moment never came"
        time.sleep(0.01)
    time.sleep(settle)
    client.send_signal(signal.SIGKILL)
    client.wait()


def token_row(warehouse: WarehouseResource) -> tuple[str, int, datetime | None]:
    rows = warehouse.fetch_all(
        "SELECT refresh_token, refreshes, refresh_started_at FROM ops.oauth_tokens"
    )
    return rows[0] if rows else ("", 0, None)


def test_given_kills_before_amocrm_answers_and_after_the_pair_is_stored_then_no_authorize(
    env: tuple[WarehouseResource, Sandbox], dagster_instance
) -> None:
    warehouse, sandbox = env
    amocrm, server = sandbox.amocrm, sandbox.servers["amocrm"]
    # the grant is at AmoCRM, not handled yet (its answer held): the token is not spent
    amocrm.expire_access_tokens()
    server.faults.add(TOKEN_PATH, status=503, delay=3.0)
    kill_when(start_client(), lambda: token_row(warehouse)[2] is not None, settle=0.3)
    assert amocrm.refresh_count == 0
    for _ in range(2):  # AmoCRM rotated the pair and the client stored it
        amocrm.expire_access_tokens()
        refreshes = token_row(warehouse)[1]
        client = start_client()
        kill_when(client, lambda refreshes=refreshes: token_row(warehouse)[1] > refreshes)
    assert amocrm.refresh_count == 2
    assert token_row(warehouse) == (amocrm.refresh_token, 2, None)

    amocrm.expire_access_tokens()
    result = run_job(dagster_instance, "refresh_amocrm")
    assert result.success, step_failures(result)
    assert amocrm.refresh_count == 3
    assert compare_amocrm(warehouse, sandbox.world) == []


def test_given_the_pair_lost_in_flight_then_one_sentence_with_the_fix(
    env: tuple[WarehouseResource, Sandbox], dagster_instance
) -> None:
    warehouse, sandbox = env
    amocrm, server = sandbox.amocrm, sandbox.servers["amocrm"]
    amocrm.expire_access_tokens()
    client = start_client()
    # killed by the simulator's own signal: the pair is rotated, its answer not yet sent
    amocrm.after_rotation = lambda: os.kill(client.pid, signal.SIGKILL)
    client.wait()
    amocrm.after_rotation = None
    assert amocrm.refresh_count == 1 and token_row(warehouse)[2] is not None
    failed = run_job(dagster_instance, "refresh_amocrm")
    assert not failed.success
    (message,) = set(step_failures(failed).values())
    assert LOST.fullmatch(message), message

    # the fix the sentence names, then a connection dropped while the answer comes back
    assert authorize(amocrm.issue_authorization_code()) == 0
    assert token_row(warehouse)[2] is None
    amocrm.expire_access_tokens()
    server.faults.add(TOKEN_PATH, reset=True)
    failed = run_job(dagster_instance, "refresh_amocrm")
    (message,) = set(step_failures(failed).values())
    assert LOST.fullmatch(message), message


def test_given_503s_from_the_token_endpoint_then_retried_and_the_run_succeeds(
    env: tuple[WarehouseResource, Sandbox], dagster_instance
) -> None:
    warehouse, sandbox = env
    sandbox.servers["amocrm"].faults.add(TOKEN_PATH, status=503, body="<html>503</html>", times=2)
    sandbox.amocrm.expire_access_tokens()
    result = run_job(dagster_instance, "refresh_amocrm")
    assert result.success, step_failures(result)
    assert sandbox.amocrm.refresh_count == 1
    assert token_row(warehouse) == (sandbox.amocrm.refresh_token, 1, None)
    assert compare_amocrm(warehouse, sandbox.world) == []


def test_given_the_token_endpoint_keeps_failing_then_a_transient_error_and_no_authorize(
    env: tuple[WarehouseResource, Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, sandbox = env
    # the client's jittered backoff drawn at its shortest: six attempts without the waits
    monkeypatch.setattr("resources.amocrm.random", SimpleNamespace(uniform=lambda low, _: low))
    server = sandbox.servers["amocrm"]
    server.faults.add(TOKEN_PATH, status=503, body="<html>503</html>", times=-1)
    sandbox.amocrm.expire_access_tokens()
    with (
        AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client,
        pytest.raises(SourceError) as failed,
    ):
        client.get("/api/v4/account")
    assert failed.value.transient and "authorize" not in failed.value.message
    assert failed.value.message.startswith(
        "AmoCRM: still failing after 6 attempts (HTTP 503 on /oauth2/access_token)."
    )
    server.faults.clear()  # AmoCRM is back: the same refresh token still works
    with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
        assert client.get("/api/v4/account")
    assert sandbox.amocrm.refresh_count == 1 and token_row(warehouse)[2] is None

"""AmoCRM answering 204 (no rows) where rows are expected, on the sandbox's AmoCRM simulator and
real PostgreSQL: after a first load, every incremental window starts at the cursor and so holds
the lead the cursor came from; a 204 for it keeps the run green (204 is not an error, amocrm.md)
but says so in the run's log and the leads' metadata, with how many loads in a row found none.
A first load that meets 204 (an account with no leads yet) stays silent."""

import re

import dagster as dg
import pytest

from assets.amocrm import sync_leads
from resources.amocrm import AmoCrmResource
from resources.warehouse import WarehouseResource
from sandbox.stack import Sandbox
from tests.conftest import point_env_at, run_job, step_failures

WARNING = re.compile(
    r"AmoCRM answered no leads \(HTTP 204\) for updated_at \d{4}-\d\d-\d\d \d\d:\d\d to "
    r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, where [1-9]\d* leads stored here were last updated and none "
    r"was deleted \((?P<runs>\d+) leads loads in a row without a row\): it may be answering empty "
    r"pages; if this repeats, check that the integration still has access to the account's "
    r"leads in AmoCRM\."
)


def test_given_amocrm_answers_204_where_leads_are_expected_then_a_warning_not_silence(
    monkeypatch: pytest.MonkeyPatch,
    warehouse: WarehouseResource,
    fresh_sandbox: Sandbox,
    dagster_instance: dg.DagsterInstance,
) -> None:
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    server = fresh_sandbox.servers["amocrm"]
    server.faults.add(r"/api/v4/leads", status=204, times=-1)
    with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
        first, _ = sync_leads(warehouse, client, {})  # an account with no leads yet: silent
    assert first.notes == [] and first.inserted == 0
    server.faults.clear()
    with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
        sync_leads(warehouse, client, {})

    server.faults.add(r"/api/v4/leads", status=204, times=-1)
    result = run_job(dagster_instance, "refresh_amocrm")
    assert result.success, step_failures(result)
    warned = [
        record.user_message
        for record in dagster_instance.all_logs(result.run_id)
        if record.level >= 30 and WARNING.fullmatch(record.user_message)
    ]
    assert len(warned) == 1
    (materialization,) = result.asset_materializations_for_node("raw_amocrm__leads")
    found = WARNING.fullmatch(materialization.metadata["notes"].value)
    assert found and found["runs"] == "1"

    # it persists: the next run's warning counts the loads that found nothing since rows came
    again = run_job(dagster_instance, "refresh_amocrm")
    (materialization,) = again.asset_materializations_for_node("raw_amocrm__leads")
    found = WARNING.fullmatch(materialization.metadata["notes"].value)
    assert found and found["runs"] == "2"

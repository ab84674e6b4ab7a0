"""Two AmoCRM lead loads started together (a `make run` beside the schedule's run) on the
sandbox's AmoCRM simulator and real PostgreSQL: the loader's advisory lock makes the second wait,
and its incremental window starts from the cursor the first one committed, so only the first
reads the whole history."""

import re
import threading
from urllib.parse import unquote

import pytest

from assets.amocrm import sync_leads
from resources.amocrm import AmoCrmResource
from resources.warehouse import LoadResult, WarehouseResource
from sandbox.stack import Sandbox
from tests.conftest import point_env_at


def test_given_two_lead_loads_start_together_then_only_the_first_reads_the_whole_history(
    monkeypatch: pytest.MonkeyPatch, warehouse: WarehouseResource, fresh_sandbox: Sandbox
) -> None:
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    barrier = threading.Barrier(2)
    results: list[LoadResult | BaseException] = []

    def load() -> None:
        with AmoCrmResource(**AmoCrmResource.bound()).open(warehouse, None) as client:
            barrier.wait()
            try:
                results.append(sync_leads(warehouse, client, {})[0])
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                results.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert all(isinstance(r, LoadResult) for r in results), results
    froms = [
        int(found[1])
        for r in fresh_sandbox.servers["amocrm"].requests
        if r.path == "/api/v4/leads"
        and (found := re.search(r"filter\[updated_at\]\[from\]=(\d+)", unquote(r.query)))
    ]
    assert froms.count(0) == 1, froms  # one read from the beginning, not two
    first, second = sorted(results, key=lambda r: r.inserted, reverse=True)  # type: ignore[union-attr]
    assert first.inserted == len(fresh_sandbox.world.amocrm_leads)
    assert second.cursor_before == first.cursor_after and second.inserted == 0
    stored = {row[0] for row in warehouse.fetch_all("SELECT id FROM raw_amocrm.leads")}
    assert stored == set(fresh_sandbox.world.amocrm_leads)

"""The Dagster UI in a real browser: Debian's Chromium, headless, driven by Playwright, against
`dg dev` (webserver, daemon, code server) started from the checkout's root on sandbox state, as
`make ui` starts it. The state: a warehouse and a Dagster instance of the test's own (the
project's instance/dagster.yaml over the test server's PostgreSQL), loaded once by every
source's run and a model rebuild, the sandbox's simulators serving the vendors.

What a user must see: the asset graph with every group; a raw asset's row count and its checks;
a mart's column schema; the schedules and sensors, running; and a materialization launched
with the UI's Materialize button that succeeds and is followed, with no other click, by the
automation's rebuild of core and marts (the daemon's `models_automation` sensor). `dg dev` must
start without a warning. Screenshots (viewport) go to docs/ui-*.png under `make ui-test`
(UI_SCREENSHOTS=docs), elsewhere to a temporary directory.

Not in `make test`: it costs minutes, not seconds (the automation sensor's 30 s ticks and the
run workers' start-up on a loaded machine); `make ui-test` runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources import embedded_pg
from resources.warehouse import WarehouseResource, engine_for
from sandbox.__main__ import launch_dg_dev, stop_dg_dev
from sandbox.server import free_port
from sandbox.stack import Sandbox
from tests.conftest import FAST, FAST_SANDBOX, ROOT, load_everything, run
from tests.test_dashboard_page import SCREENSHOT_LIMIT, chromium_path

pytestmark = pytest.mark.ui  # `make ui-test`; left out of `make test` (see pyproject.toml)

VIEWPORT: Any = {"width": 1400, "height": 900}
LAUNCHED = ["raw_supabase_traffic", "all_sales_tracking"]  # materialized from the UI
# downstream of it, rebuilt by the automation sensor alone
REBUILT = [["core", "sales"], ["marts", "sales_total"]]
MART = ["marts", "targetologist_daily"]
MART_COLUMNS = ("day", "targetologist", "spend", "leads", "sales", "revenue", "cpl", "roas")
SCHEDULES = ("hourly_refresh", "daily_facebook_restatement")
SENSORS = ("models_automation", "integration_alerts")
UI_START_TIMEOUT = 180.0  # s: webserver up and the code location loaded
AUTOMATION_TIMEOUT = 300.0  # s: queued → run → sensor tick (30 s) → model runs


@dataclass
class RunningUi:
    url: str
    instance: dg.DagsterInstance
    warehouse: WarehouseResource
    log: Path  # what `dg dev` printed


def wait_until(what: str, predicate: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s", pytrace=False)


def server_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def running_ui(pg_server: str, warehouse_template: str, home: Path) -> Iterator[RunningUi]:
    """Fresh warehouse and Dagster databases, the sandbox, one load of everything, `dg dev`."""
    for name in ("warehouse_ui", "dagster_ui"):
        embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, "warehouse_ui", template=warehouse_template)
    embedded_pg.create_database(pg_server, "dagster_ui")
    warehouse = WarehouseResource(url=embedded_pg.database_uri(pg_server, "warehouse_ui"))
    dagster_url = embedded_pg.database_uri(pg_server, "dagster_ui")
    shutil.copyfile(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
    log = home / "dg-dev.log"
    mp = pytest.MonkeyPatch()
    child = None
    try:
        with Sandbox(pg_server, prefix="ui", **FAST_SANDBOX) as sandbox:
            env = {
                **sandbox.env(),
                "WAREHOUSE_URL": warehouse.url,
                "DAGSTER_HOME": str(home),
                "DAGSTER_PG_URL": embedded_pg.sqlalchemy_uri(dagster_url, "psycopg2"),
                "AMOCRM_MAX_RPS": str(FAST - 50),
            }
            for key, value in env.items():
                mp.setenv(key, value)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                load_everything(instance)
                run(instance, "rebuild_models")
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                with log.open("wb") as out:
                    child = launch_dg_dev(port, dict(os.environ), stdout=out, stderr=out)
                wait_until(
                    "dg dev answering /server_info", lambda: server_up(url), UI_START_TIMEOUT
                )
                yield RunningUi(url, instance, warehouse, log)
    finally:
        if child is not None:
            stop_dg_dev(child)
        mp.undo()
        engine_for(warehouse.url).dispose()
        for name in ("warehouse_ui", "dagster_ui"):
            embedded_pg.drop_database(pg_server, name)


@pytest.fixture(scope="module")
def ui(pg_server: str, warehouse_template: str, tmp_path_factory) -> Iterator[RunningUi]:
    chromium_path()  # fail before anything starts when the browser is missing
    with running_ui(pg_server, warehouse_template, tmp_path_factory.mktemp("ui_home")) as running:
        yield running


@pytest.fixture(scope="module")
def page(ui: RunningUi) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("UI_SCREENSHOTS")
    folder = ROOT / target if target else tmp_path_factory.mktemp("ui_shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"ui-{name}.png"
    page.screenshot(path=str(path))  # the viewport, not the full page
    assert path.stat().st_size < SCREENSHOT_LIMIT, f"{path.name}: {path.stat().st_size} bytes"


def latest_materialization(instance: dg.DagsterInstance, key: list[str]) -> Any:
    return instance.get_latest_materialization_event(dg.AssetKey(key))


def test_given_dg_dev_when_started_then_no_warning(ui: RunningUi):
    printed = ui.log.read_text(errors="replace")
    warnings = [line for line in printed.splitlines() if re.search(r"warn", line, re.I)]
    assert not warnings, "\n".join(warnings)


def test_given_ui_then_asset_graph_shows_every_group_and_the_assets(page, ui, shots):
    page.goto(f"{ui.url}/asset-groups")
    for group in ("amocrm", "facebook", "supabase_main", "supabase_traffic",
                  "supabase_tripwire", "core", "marts"):  # fmt: skip
        page.get_by_text(group, exact=True).first.wait_for()
    page.get_by_role("button", name=re.compile("Materialize all")).wait_for()
    screenshot(page, shots, "asset-graph")

    # one group's graph draws the raw tables upstream of it (the graph draws what is in view)
    page.goto(f"{ui.url}/locations/definitions/asset-groups/marts/lineage")
    for name in ("account", "lead_events", "pipelines", "ad_insights_daily"):
        page.get_by_text(name, exact=True).first.wait_for()
    # the catalog names every core and marts asset
    page.goto(f"{ui.url}/assets")
    for name in ("core / leads", "core / sales", "core / ad_spend_daily", "marts / leads_total",
                 "marts / leads_by_funnel", "marts / sales_total"):  # fmt: skip
        page.get_by_text(name, exact=True).first.wait_for()


def test_given_raw_asset_then_its_row_count_and_checks_are_shown(page, ui, shots):
    key = ["raw_supabase_main", "landing_leads"]
    event = latest_materialization(ui.instance, key)
    rows = event.asset_materialization.metadata["dagster/row_count"].value
    page.goto(f"{ui.url}/assets/{'/'.join(key)}")
    page.get_by_text("Row count", exact=True).wait_for()
    page.get_by_text(f"{rows:,}", exact=True).first.wait_for()
    page.get_by_text("source_table").first.wait_for()  # its metadata table
    screenshot(page, shots, "raw-asset")

    page.goto(f"{ui.url}/assets/{'/'.join(key)}?view=checks")
    page.get_by_text("Checks (3)").wait_for()
    for check in ("landing_bd_sync", "schema_drift", "supabase_main_key"):
        page.get_by_text(check, exact=True).first.wait_for()
    # the diagnostic's own sentence and counts, as the check recorded them
    page.get_by_text(re.compile(r"\d+ of \d+ landing leads synced to AmoCRM")).first.wait_for()
    page.get_by_text("total_leads", exact=True).first.wait_for()
    screenshot(page, shots, "raw-asset-checks")


def test_given_mart_then_its_column_schema_is_shown(page, ui, shots):
    page.goto(f"{ui.url}/assets/{'/'.join(MART)}")
    page.get_by_text("Columns", exact=True).first.wait_for()
    table = page.locator("table", has_text="Column name").first
    table.wait_for()
    for column in MART_COLUMNS:
        table.get_by_text(column, exact=True).first.wait_for()
    page.get_by_text("calendar day in REPORTING_TZ", exact=False).first.wait_for()
    screenshot(page, shots, "mart-columns")


def test_given_automation_page_then_schedules_and_sensors_are_listed_and_running(page, ui, shots):
    page.goto(f"{ui.url}/automation")
    for name in (*SCHEDULES, *SENSORS):
        page.get_by_text(name, exact=True).wait_for()
    page.get_by_text("Scheduled At 5 minutes past the hour").wait_for()
    # one toggle per schedule and sensor, each on (running by default)
    running = page.locator("input[type=checkbox][checked]")
    wait_until("four running toggles", lambda: running.count() == 4, 60)
    screenshot(page, shots, "automation")


def test_given_materialize_clicked_then_run_succeeds_and_automation_rebuilds_core_and_marts(
    page, ui, shots
):
    before = {tuple(k): latest_materialization(ui.instance, k).timestamp for k in REBUILT}
    page.goto(f"{ui.url}/assets/{'/'.join(LAUNCHED)}")
    page.get_by_text("Row count", exact=True).wait_for()
    page.get_by_role("button", name="Materialize").first.click()
    page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).wait_for()
    launched = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first.inner_text()
    prefix = re.search(r"[0-9a-f]{8}", launched).group(0)  # type: ignore[union-attr]

    def launched_run() -> Any:
        runs = ui.instance.get_runs(dg.RunsFilter(tags={"dagster/from_ui": "true"}))
        return next((r for r in runs if r.run_id.startswith(prefix) and r.is_finished), None)

    ui_run = wait_until("the UI's run finished", launched_run, AUTOMATION_TIMEOUT, 2)
    assert ui_run.status == dg.DagsterRunStatus.SUCCESS
    assert ui_run.asset_selection == {dg.AssetKey(LAUNCHED)}

    def rebuilt() -> dict[tuple[str, ...], Any] | None:
        runs = {}
        for key in REBUILT:
            event = latest_materialization(ui.instance, key)
            if event.timestamp <= before[tuple(key)]:
                return None
            model_run = ui.instance.get_run_by_id(event.run_id)
            if model_run is None or not model_run.is_finished:
                return None
            runs[tuple(key)] = model_run
        return runs

    runs = wait_until("core and marts rebuilt by the automation", rebuilt, AUTOMATION_TIMEOUT, 3)
    for key, model_run in runs.items():
        assert model_run.tags.get("dagster/sensor_name") == "models_automation", key
        assert model_run.tags.get("dagster/from_automation_condition") == "true", key
        assert model_run.status == dg.DagsterRunStatus.SUCCESS, key

    # what the user sees: the automation's run on the Runs page, succeeded
    model_run = runs[tuple(REBUILT[-1])]
    page.goto(f"{ui.url}/runs/{model_run.run_id}")
    page.get_by_text("models_automation").first.wait_for()
    page.get_by_text("Success", exact=False).first.wait_for()
    screenshot(page, shots, "automation-run")

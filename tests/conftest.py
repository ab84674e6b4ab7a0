"""Shared fixtures: one embedded PostgreSQL per test session, a fresh warehouse database per test
(copied from a template that has the DDL), the sandbox's simulators on 127.0.0.1, and a Dagster
instance whose storage is PostgreSQL, configured by the project's own dagster.yaml."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from resources import embedded_pg
from resources.dagster_instance import hold_connections
from resources.environment import install_instance_config
from resources.warehouse import WarehouseResource, engine_for
from sandbox.server import free_port
from sandbox.stack import Sandbox
from tests import durations

if TYPE_CHECKING:
    from checks.quality import Failure

# the fault matrix's table at the end of the session (xdist's controller included)
from tests.reliability.report import (  # noqa: F401
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

ROOT = Path(__file__).resolve().parent.parent
# a separate data dir per concurrent test session (one session stops its server at the end),
# and per pytest-xdist worker (each worker is a session with its own server)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_PGDATA = Path(
    (os.environ.get("TEST_PGDATA") or str(ROOT / ".local" / "test-pgdata"))
    + (f"-{_WORKER}" if _WORKER else "")
)
TEMPLATE_DB = "warehouse_template"
SEED, SCALE = 7, 0.3
# AmoCRM's real 7 requests/s would make every test run take seconds; the rate limiter has its
# own test at the real limit, the rest run with a raised budget on both sides.
FAST = 300.0
# Facebook's async jobs finish on their first poll here; the polling has its own test.
FAST_SANDBOX: dict = {"seed": SEED, "scale": SCALE, "amocrm_rate": FAST, "facebook_polls": 1}
# For tests that need a world's shapes and its changes, not its size: a third of the rows
# (updates still among an advance's changes), the Data API's page cap lowered with them, so
# landing leads span five pages and all_sales_tracking two, as at SCALE with the real cap
SMALL_SANDBOX: dict = {**FAST_SANDBOX, "scale": 0.1, "max_rows": 200}
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    # its TCP port a free one: test sessions of several checkouts run side by side
    uri = embedded_pg.start(TEST_PGDATA, databases=(), port=free_port())
    yield uri
    embedded_pg.stop(TEST_PGDATA)


@pytest.fixture(scope="session")
def warehouse_template(pg_server: str) -> str:
    embedded_pg.drop_database(pg_server, TEMPLATE_DB)
    embedded_pg.create_database(pg_server, TEMPLATE_DB)
    url = embedded_pg.database_uri(pg_server, TEMPLATE_DB)
    WarehouseResource(url=url).apply_ddl()
    engine_for(url).dispose()  # a template must have no open connections to be copied
    return TEMPLATE_DB


@pytest.fixture
def warehouse(pg_server: str, warehouse_template: str) -> Iterator[WarehouseResource]:
    name = f"warehouse_test_{next(_counter)}"
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=warehouse_template)
    url = embedded_pg.database_uri(pg_server, name)
    yield WarehouseResource(url=url)
    engine_for(url).dispose()
    embedded_pg.drop_database(pg_server, name)


@pytest.fixture(scope="session")
def shared_sandbox(pg_server: str) -> Iterator[Sandbox]:
    """The sandbox at its initial state; tests must not advance it (use `fresh_sandbox`)."""
    with Sandbox(pg_server, prefix="shared", **FAST_SANDBOX) as sandbox:
        yield sandbox


@pytest.fixture
def fresh_sandbox(pg_server: str) -> Iterator[Sandbox]:
    """A sandbox of this test's own, free to advance or to break."""
    prefix = f"fresh{next(_counter)}"
    with Sandbox(pg_server, prefix=prefix, **FAST_SANDBOX) as sandbox:
        yield sandbox


@pytest.fixture
def small_sandbox(pg_server: str) -> Iterator[Sandbox]:
    """A sandbox of this test's own at SMALL_SANDBOX's size, free to advance or to break."""
    with Sandbox(pg_server, prefix=f"small{next(_counter)}", **SMALL_SANDBOX) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def dagster_home(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A DAGSTER_HOME with the project's dagster.yaml, its storage in the test server."""
    embedded_pg.create_database(pg_server, "dagster")
    home = install_instance_config(tmp_path_factory.mktemp("dagster_home"))
    mp = pytest.MonkeyPatch()
    mp.setenv(
        "DAGSTER_PG_URL",
        embedded_pg.sqlalchemy_uri(embedded_pg.database_uri(pg_server, "dagster"), "psycopg2"),
    )
    yield home
    mp.undo()


@contextmanager
def own_dagster_instance(
    pg_server: str, home: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> Iterator[dg.DagsterInstance]:
    """The project's instance (instance/dagster.yaml in `home`) over a Dagster database of the
    test's own: no other test's runs or heartbeats. The database is dropped afterwards."""
    embedded_pg.drop_database(pg_server, database)
    embedded_pg.create_database(pg_server, database)
    url = embedded_pg.database_uri(pg_server, database)
    monkeypatch.setenv("DAGSTER_PG_URL", embedded_pg.sqlalchemy_uri(url, "psycopg2"))
    install_instance_config(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
    embedded_pg.drop_database(pg_server, database)


@pytest.fixture(scope="session")
def dagster_instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield hold_connections(instance)  # as `make run`'s instance does


# What a user may leave unset (.env.example shows their defaults): the shared loaded warehouse
# is filled without them, so every documented default (FX_RATES' rates, REPORTING_TZ, ...) is
# the one a real first run uses. AMOCRM_MAX_RPS stays: the sandbox's budget is raised.
OPTIONAL = ("REPORTING_TZ", "REPORTING_CURRENCY", "FX_RATES", "FACEBOOK_API_VERSION",
            "SUPABASE_MAIN_ANON_KEY", "SUPABASE_TRIPWIRE_ANON_KEY", "SUPABASE_TRAFFIC_ANON_KEY",
            "TELEGRAM_API_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")  # fmt: skip


def point_env_at(
    monkeypatch: pytest.MonkeyPatch,
    warehouse: WarehouseResource,
    sandbox: Sandbox,
    *,
    minimal: bool = False,
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("AMOCRM_MAX_RPS", str(FAST - 50))
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    for key in OPTIONAL if minimal else ():
        monkeypatch.delenv(key, raising=False)


def run_job(
    instance: dg.DagsterInstance, name: str, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    from assets.jobs import job_run_config, job_run_tags
    from definitions import defs
    from resources.settings import declare_unset

    declare_unset()  # the variables a test unset, as a process importing definitions has them
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={**job_run_tags(name), **(tags or {})},
        run_config=job_run_config(name),
    )


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    from assets.jobs import failure_messages

    return failure_messages(result)


def run(instance: dg.DagsterInstance, *jobs: str) -> None:
    for job in jobs:
        result = run_job(instance, job)
        assert result.success, step_failures(result)


def load_everything(instance: dg.DagsterInstance, restate: bool = False) -> None:
    from assets.jobs import SOURCES, source_job_name

    run(instance, *(source_job_name(s) for s in SOURCES))
    if restate:
        run(instance, "facebook_restatement")


@pytest.fixture(scope="session")
def loaded_warehouse(
    pg_server: str, warehouse_template: str, dagster_instance: dg.DagsterInstance
) -> Iterator[tuple[WarehouseResource, Sandbox]]:
    """A warehouse one full refresh has filled from a sandbox of its own (with only the settings
    a user must set: the documented defaults apply), shared by every test
    that only reads it (one full load instead of one per test). A test that breaks it for a
    moment puts it back as it found it; its environment is set while the test runs."""
    name = f"warehouse_loaded_{next(_counter)}"
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=warehouse_template)
    warehouse = WarehouseResource(url=embedded_pg.database_uri(pg_server, name))
    with Sandbox(pg_server, prefix=f"loaded{next(_counter)}", **FAST_SANDBOX) as sandbox:
        mp = pytest.MonkeyPatch()
        point_env_at(mp, warehouse, sandbox, minimal=True)
        load_everything(dagster_instance)
        run(dagster_instance, "rebuild_models")
        mp.undo()
        yield warehouse, sandbox
    engine_for(warehouse.url).dispose()
    embedded_pg.drop_database(pg_server, name)


@pytest.fixture
def loaded(
    monkeypatch: pytest.MonkeyPatch, loaded_warehouse: tuple[WarehouseResource, Sandbox]
) -> tuple[WarehouseResource, Sandbox]:
    """The shared loaded warehouse, with this test's environment pointed at it and its sandbox."""
    point_env_at(monkeypatch, *loaded_warehouse)
    return loaded_warehouse


# Seconds each module's tests took (setup and teardown included) in the suite's durations
# profile (tests/durations.json, written by `make test-profile`: the shares count, not the
# seconds); a module not listed counts DEFAULT_TEST_SECONDS a test.
MODULE_SECONDS: dict[str, float] = durations.profile()
DEFAULT_TEST_SECONDS = 1


def pytest_addoption(parser: pytest.Parser) -> None:
    durations.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(durations.Durations(config), "durations")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest modules first, dealt to the xdist workers as evenly as their seconds allow,
    each worker's share heaviest first: a long test starting late leaves one worker busy while
    the other has nothing left. Worksteal hands each worker a contiguous run of the items (as
    many as `len // workers left`) and steals from the ends of the runs: the light items. A
    module's items stay together (its module-scoped fixtures are built once) unless a share
    has more items than its run: its lightest ones then end the next runs."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.partition("::")[0], []).append(item)

    def seconds(module: str) -> float:
        return MODULE_SECONDS.get(module, DEFAULT_TEST_SECONDS * len(modules[module]))

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    shares: list[list[str]] = [[] for _ in range(workers)]
    for module in sorted(modules, key=seconds, reverse=True):
        min(shares, key=lambda share: sum(map(seconds, share))).append(module)
    runs, left = [], len(items)
    for remaining in range(workers, 0, -1):
        runs.append(left // remaining)
        left -= runs[-1]
    dealt = [[item for module in share for item in modules[module]] for share in shares]
    spare = [item for share, run in zip(dealt, runs, strict=True) for item in share[run:]]
    items[:] = []
    for share, run in zip(dealt, runs, strict=True):
        missing = run - len(share[:run])
        items += share[:run] + spare[:missing]
        del spare[:missing]


def validate_rows(warehouse: WarehouseResource, table: str, rows: list[dict]) -> list[Failure]:
    """`table`'s quality suite run in the warehouse on `rows` alone (a table of their columns,
    typed as in `table`)."""
    from psycopg import sql

    from checks.quality import validate

    sample = sql.Identifier("public", "quality_sample")
    columns = sql.SQL(", ").join(map(sql.Identifier, rows[0]))
    with warehouse.connection() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sample))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
            sample, columns, sql.Identifier(*table.split("."))))  # fmt: skip
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sample, columns)) as cp:
            for row in rows:
                cp.write_row(tuple(row.values()))
    return validate(warehouse, table, "public.quality_sample")

"""dashboard_reader's password at run start: eight runs setting up their warehouse resource at
once (as the schedule starts its runs together) all succeed, the role is altered once, and a run
start whose DASHBOARD_READER_PASSWORD did not change leaves the role alone; a server whose
pg_hba refuses the reader from the loading host (a managed PostgreSQL) still sets it, each
start in turn. Real PostgreSQL; the
role's SCRAM verifier is read from pg_authid as the test's superuser."""

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources import embedded_pg
from resources.pg_auth import password_fingerprint
from resources.warehouse import WarehouseResource, engine_for

RUNS = 8
PASSWORD = "reader-pw-7f3a9c"  # distinctive, so a leak would be found by a plain grep


def at_once(work: Callable[[], Any]) -> list[Any]:
    """`work` in RUNS threads released together; their results, or the exception raised."""
    barrier = threading.Barrier(RUNS)
    results: list[Any] = [None] * RUNS

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def verifier(warehouse: WarehouseResource) -> str:
    return str(
        warehouse.fetch_all("SELECT rolpassword FROM pg_authid WHERE rolname = 'dashboard_reader'")[
            0
        ][0]
    )


def verifies(stored: str, password: str) -> bool:
    """Does the SCRAM-SHA-256 verifier PostgreSQL stores accept `password`?"""
    _, rest = stored.split("$", 1)
    head, keys = rest.split("$")
    iterations, salt64 = head.split(":")
    stored_key64, _ = keys.split(":")
    salted = password_fingerprint(password, base64.b64decode(salt64), int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key64


def forget_password(warehouse: WarehouseResource) -> None:
    """The role as the DDL creates it (the test server outlives sessions, and so does a role)."""
    with warehouse.connection() as conn:
        conn.execute("ALTER ROLE dashboard_reader NOLOGIN PASSWORD NULL")


def test_given_eight_runs_start_together_then_all_set_up_and_the_role_is_altered_once(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget_password(warehouse)
    monkeypatch.setenv("DASHBOARD_READER_PASSWORD", PASSWORD)
    altered = at_once(lambda: WarehouseResource(url=warehouse.url).configure_dashboard_role())
    assert sorted(altered, key=str) == [False] * (RUNS - 1) + [True]
    first = verifier(warehouse)
    assert verifies(first, PASSWORD)

    # every run start after that: the same password, so no ALTER ROLE (the verifier is kept)
    context = dg.build_init_resource_context()
    started = at_once(lambda: WarehouseResource(url=warehouse.url).setup_for_execution(context))
    assert started == [None] * RUNS
    assert verifier(warehouse) == first

    monkeypatch.setenv("DASHBOARD_READER_PASSWORD", f"{PASSWORD}-rotated")
    assert WarehouseResource(url=warehouse.url).configure_dashboard_role()
    assert verifies(verifier(warehouse), f"{PASSWORD}-rotated")


def test_given_another_warehouse_changed_the_role_then_this_one_sets_its_password_again(
    warehouse: WarehouseResource, pg_server: str, warehouse_template: str
) -> None:
    """The role is the server's: two warehouses on one server with different passwords (two
    checkouts, a test database beside the demo's) each find the role as they need it."""
    name = "warehouse_role_other"
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=warehouse_template)
    other = WarehouseResource(url=embedded_pg.database_uri(pg_server, name))
    try:
        forget_password(warehouse)
        assert warehouse.configure_dashboard_role(PASSWORD)
        assert other.configure_dashboard_role(f"{PASSWORD}-other")
        assert warehouse.configure_dashboard_role(PASSWORD)  # the other one changed it since
        assert verifies(verifier(warehouse), PASSWORD)
        assert not warehouse.configure_dashboard_role(PASSWORD)
    finally:
        engine_for(other.url).dispose()
        embedded_pg.drop_database(pg_server, name)


# what a managed server's pg_hba says of a role it admits only from the BI tool's network
REFUSE_READER = "".join(
    f"{kind} all dashboard_reader {address} reject\n"
    for kind, address in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128"))
)


@contextmanager
def reader_refused(warehouse: WarehouseResource) -> Iterator[None]:
    """The server's pg_hba refusing dashboard_reader from this host, for the block's length."""
    hba = Path(warehouse.fetch_all("SELECT current_setting('hba_file')")[0][0])
    rules = hba.read_text()
    hba.write_text(REFUSE_READER + rules)
    warehouse.fetch_all("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(rules)
        warehouse.fetch_all("SELECT pg_reload_conf()")


def test_given_pg_hba_refuses_the_reader_here_then_every_start_sets_it_one_at_a_time(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The login that tells whether the password is current fails for another reason than the
    password: each run start alters the role, under the lock, so none fails on another."""
    forget_password(warehouse)
    monkeypatch.setenv("DASHBOARD_READER_PASSWORD", PASSWORD)
    with reader_refused(warehouse):
        altered = at_once(lambda: WarehouseResource(url=warehouse.url).configure_dashboard_role())
    assert altered == [True] * RUNS
    assert verifies(verifier(warehouse), PASSWORD)

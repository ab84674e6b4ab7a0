"""A small world of a module's own for the reliability tests: a fresh warehouse database and a
sandbox at a small scale with every simulator, the environment pointed at both, and helpers to
load it and compare the marts with the world's ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest

from resources import embedded_pg
from resources.warehouse import WarehouseResource, engine_for
from sandbox.stack import Sandbox
from sandbox.truth import compare_marts
from tests.conftest import FAST_SANDBOX, load_everything, point_env_at, run

# small enough that one full load takes seconds, large enough that every mart has rows
SCALE = 0.1


@dataclass
class SmallWorld:
    warehouse: WarehouseResource
    sandbox: Sandbox
    instance: dg.DagsterInstance

    def refresh(self) -> None:
        """Every source's run, then the models (as the schedule and the automation would)."""
        load_everything(self.instance)
        run(self.instance, "rebuild_models")

    def marts_differences(self) -> list[str]:
        return compare_marts(self.warehouse, self.sandbox.world)

    def sql(self, query: str, *params: Any) -> list[tuple]:
        return self.warehouse.fetch_all(query, params)


@contextmanager
def small_world(
    pg_server: str, template: str, instance: dg.DagsterInstance, name: str
) -> Iterator[SmallWorld]:
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=template)
    warehouse = WarehouseResource(url=embedded_pg.database_uri(pg_server, name))
    options = {**FAST_SANDBOX, "scale": SCALE}
    mp = pytest.MonkeyPatch()
    try:
        with Sandbox(pg_server, prefix=name, **options) as sandbox:
            point_env_at(mp, warehouse, sandbox)
            yield SmallWorld(warehouse, sandbox, instance)
    finally:
        mp.undo()
        engine_for(warehouse.url).dispose()
        embedded_pg.drop_database(pg_server, name)

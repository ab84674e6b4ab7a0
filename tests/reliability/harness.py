"""What the reliability tests share: a world of a test module's own (a warehouse database, a small
sandbox, the environment pointed at both), a source's run as the operator starts it, faster vendor
waits, raw-table fingerprints (nothing lost, nothing duplicated) and the fault matrix's record."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest
from psycopg import sql

import resources.amocrm
import resources.facebook
from resources import embedded_pg
from resources.canonical import PROJECTS
from resources.vendor_clock import VendorClock
from resources.warehouse import WarehouseResource, engine_for
from sandbox.stack import Sandbox
from tests.conftest import FAST_SANDBOX, point_env_at

# Small enough that a source's whole re-read takes a second, large enough that every mart has
# rows and every Supabase table spans several pages of the capped page size below.
SMALL_SCALE = 0.05
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Client timeouts and back-offs short enough for a test to meet them (the vendors' real ones are
# tens of seconds); the retry counts and the decisions stay the product's.
QUICK_TUNING: dict[str, dict[str, float]] = {
    "amocrm": {"timeout_seconds": 1.0, "default_retry_after_seconds": 0.01},
    "facebook": {"timeout_seconds": 1.0, "poll_first_seconds": 0.01},
    "telegram": {"timeout_seconds": 1.0},
    **{f"supabase_{p}": {"timeout_seconds": 1.0, "backoff_seconds": 0.01} for p in PROJECTS},
}


def quick_resources() -> dict[str, Any]:
    """Run config giving each resource QUICK_TUNING, as an operator's launchpad config would:
    the fields it names, the bindings definitions.py configured for the rest."""
    return {"resources": {key: {"config": tuning} for key, tuning in QUICK_TUNING.items()}}


@dataclass
class OwnWorld:
    """A warehouse and a sandbox no other test touches, the environment pointed at them."""

    warehouse: WarehouseResource
    sandbox: Sandbox
    env: pytest.MonkeyPatch

    def sql(self, query: str | sql.Composed, *params: Any) -> list[tuple]:
        return self.warehouse.fetch_all(query, params)

    def execute(self, statement: str | sql.Composed) -> None:
        with self.warehouse.connection() as conn:
            conn.execute(statement.encode() if isinstance(statement, str) else statement)


@contextmanager
def own_world(
    pg_server: str, template: str, name: str, **sandbox_options: Any
) -> Iterator[OwnWorld]:
    embedded_pg.drop_database(pg_server, name)
    embedded_pg.create_database(pg_server, name, template=template)
    warehouse = WarehouseResource(url=embedded_pg.database_uri(pg_server, name))
    options = {**FAST_SANDBOX, "scale": SMALL_SCALE, **sandbox_options}
    try:
        with Sandbox(pg_server, prefix=name, **options) as sandbox:
            with pytest.MonkeyPatch.context() as mp:
                point_env_at(mp, warehouse, sandbox)
                yield OwnWorld(warehouse, sandbox, mp)
    finally:
        engine_for(warehouse.url).dispose()
        embedded_pg.drop_database(pg_server, name)


def source_run(source: str, *, reload: bool = True) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(job, tags, run config) of a source's run: the hourly one, or with `reload` a re-read of
    everything as `make backfill ... ALL=1` starts it (Facebook: its hourly window either way),
    so every run meets full pages whatever the cursor says."""
    from assets.jobs import job_run_config, job_run_tags, source_job_name
    from commands.backfill import plan_run

    if reload and source != "facebook":
        args = argparse.Namespace(source=source, all=True, since=None, until=None)
        return plan_run(args)
    job = source_job_name(source)
    return job, job_run_tags(job), job_run_config(job)


def run_source(
    instance: dg.DagsterInstance,
    source: str,
    *,
    reload: bool = True,
    quick: bool = True,
    steps: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """The source's run; with `steps`, only those assets' steps (not their checks)."""
    from definitions import defs

    job, job_tags, config = source_run(source, reload=reload)
    if steps and "ops" in config:
        config = {"ops": {op: c for op, c in config["ops"].items() if op in steps}}
    extra = quick_resources() if quick else {}
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={"source": source, **job_tags, **(tags or {})},
        run_config={**QUIET, **config, **extra},
        op_selection=list(steps) or None,
    )


def one_line(result: dg.ExecuteInProcessResult, source: str, world: OwnWorld) -> str:
    """The line `make run` prints for a failed source."""
    from assets.jobs import failure_messages
    from commands.runs import failure_line

    return failure_line(list(failure_messages(result).values()), source, world.warehouse)


class QuickClock(VendorClock):
    """The vendor's waits (Facebook's throttle minutes, back-offs) at SPEED times real time."""

    SPEED = 600.0

    def __init__(self) -> None:
        super().__init__()
        self._t0 = time.monotonic()

    def monotonic(self) -> float:
        return self._t0 + (time.monotonic() - self._t0) * self.SPEED

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.SPEED)


class ShortJitter(random.Random):
    """AmoCRM's retry jitter (up to 8 s a wait) at a hundredth."""

    def uniform(self, a: float, b: float) -> float:
        return super().uniform(a, b) / 100


def quicken_vendor_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait of a failing run shortened, every decision (what is retried, how often) kept:
    the vendors' waits, AmoCRM's jitter, and Dagster's step retries (15 s, then 30 s)."""
    monkeypatch.setattr(resources.facebook, "VendorClock", QuickClock)
    monkeypatch.setattr(resources.amocrm, "random", ShortJitter(0))
    monkeypatch.setattr(dg.RetryPolicy, "calculate_delay", lambda self, attempt_num: 0.01)


# ---- nothing lost, nothing duplicated ------------------------------------------------------------

# the stamp a load writes whatever the rows say (when it ran); every other column is the source's
VOLATILE = ("_loaded_at",)


def raw_tables(world: OwnWorld, source: str) -> list[tuple[str, list[str]]]:
    """(table, primary key columns) of every table in the source's raw schema."""
    rows = world.sql(
        "SELECT c.relname, array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum))"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indisprimary AND n.nspname = %s AND c.relkind = 'r' GROUP BY c.relname"
        " ORDER BY 1",
        f"raw_{source}",
    )
    return [(name, list(key)) for name, key in rows]


def fingerprint(world: OwnWorld, source: str) -> dict[str, tuple[int, int, str]]:
    """Per raw table: rows, distinct keys, and a digest of every row's content by key."""
    out = {}
    for table, key in raw_tables(world, source):
        keys = sql.SQL(", ").join(map(sql.Identifier, key))
        query = sql.SQL(
            "SELECT count(*), count(DISTINCT ({keys})), coalesce(md5(string_agg("
            "(to_jsonb(t) - %s::text[])::text, ',' ORDER BY {keys})), '') FROM {table} t"
        ).format(keys=keys, table=sql.Identifier(f"raw_{source}", table))
        count, distinct, digest = world.sql(query, list(VOLATILE))[0]
        out[table] = (count, distinct, digest)
    return out


def fingerprint_differences(
    before: dict[str, tuple[int, int, str]], after: dict[str, tuple[int, int, str]]
) -> list[str]:
    problems = []
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table), after.get(table)
        if old is None or new is None:
            problems.append(f"{table}: {old} → {new}")
        elif new[0] != new[1]:
            problems.append(f"{table}: {new[0] - new[1]} duplicated keys")
        elif old != new:
            problems.append(f"{table}: {old[0]} rows → {new[0]} rows (content differs)")
    return problems


# ---- the fault matrix's record -------------------------------------------------------------------


@dataclass
class MatrixRow:
    source: str
    fault: str
    expected: str
    defect: str = ""
    observed: str = "not run"
    message: str = ""
    recovered: str = "-"


@dataclass
class Matrix:
    HEADERS = ("source", "fault", "expected", "observed", "recovered", "one-line message", "defect")
    rows: dict[tuple[str, str], MatrixRow] = field(default_factory=dict)
    # {source: "yes" | "NO"}: a source's recovery is a test of its own, which xdist may run on
    # another worker than the source's faults, so it is kept apart and merged with the rows
    recoveries: dict[str, str] = field(default_factory=dict)

    def record(self, row: MatrixRow) -> None:
        self.rows[(row.source, row.fault)] = row

    def recovered(self, source: str, ok: bool) -> None:
        self.recoveries[source] = "yes" if ok else "NO"

    def recovery(self, row: MatrixRow) -> str:
        return row.recovered if row.recovered != "-" else self.recoveries.get(row.source, "-")

    def survived(self, row: MatrixRow) -> bool:
        return row.observed == row.expected and self.recovery(row) == "yes"

    def table(self) -> list[tuple[str, ...]]:
        def short(text: str) -> str:
            return text if len(text) <= 90 else text[:89] + "…"

        return [
            (r.source, r.fault, r.expected, r.observed, self.recovery(r), short(r.message),
             r.defect)
            for r in self.rows.values()
        ]  # fmt: skip

    def summary(self) -> str:
        tried = len(self.rows)
        survived = sum(self.survived(r) for r in self.rows.values())
        return f"faults tried: {tried}, survived (as designed, then recovered exactly): {survived}"


MATRIX = Matrix()


def rows_lost_and_duplicated(
    before: dict[str, tuple[int, int, str]], after: dict[str, tuple[int, int, str]]
) -> tuple[int, int]:
    """Rows a clean state had and this one lacks; rows this one holds twice or beyond it."""
    lost = duplicated = 0
    for table, (count, distinct, _) in after.items():
        old = before.get(table, (0, 0, ""))[0]
        lost += max(0, old - distinct)
        duplicated += (count - distinct) + max(0, distinct - old)
    return lost, duplicated


@dataclass
class Crashes:
    """Every kill of the crash tests: what differed after the next run, rows lost, duplicated."""

    kills: list[tuple[str, list[str]]] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    ended_first: int = 0  # runs that finished before their moment came (not kills)

    def record(self, name: str, problems: list[str], lost: int = 0, duplicated: int = 0) -> None:
        self.kills.append((name, problems))
        self.lost += lost
        self.duplicated += duplicated

    def merge(self, other: dict[str, Any] | None) -> None:
        """Add another session's kills (an xdist worker's, sent as `asdict(CRASHES)`)."""
        if other is None:
            return
        self.kills += [(name, list(problems)) for name, problems in other["kills"]]
        self.lost += other["lost"]
        self.duplicated += other["duplicated"]
        self.ended_first += other["ended_first"]

    def failed(self) -> list[tuple[str, list[str]]]:
        return [(name, problems) for name, problems in self.kills if problems]

    def summary(self) -> str:
        survived = len(self.kills) - len(self.failed())
        return (
            f"kills tried: {len(self.kills)}, survived (next run restored the exact clean state):"
            f" {survived}, rows lost: {self.lost}, rows duplicated: {self.duplicated}"
            f" (runs that ended before their kill: {self.ended_first})"
        )


CRASHES = Crashes()

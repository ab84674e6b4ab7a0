"""The Dagster instance of a command-line process (`make run`, `make rebuild`, `make backfill`)
and of the test session: DAGSTER_HOME's, with one held connection per storage.

dagster-postgres opens a new connection for every storage call (its engines use NullPool, so
that many short-lived instances do not accumulate connections): about 140 of them for one
in-process run of a source. The webserver instead holds one per storage, through the instance's
own `optimize_for_webserver`; a process that executes runs in process does the same, which made a
source's run about 40 % faster on the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

# connections older than this are replaced: a managed PostgreSQL may drop idle ones
POOL_RECYCLE_SECONDS = 600
# beyond the one held connection, for the threads of a run (Facebook's accounts side by side)
POOL_MAX_OVERFLOW = 10


def hold_connections(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """Let `instance`'s PostgreSQL storages keep their connections (no statement timeout)."""
    instance.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_MAX_OVERFLOW
    )
    return instance


@contextmanager
def command_instance() -> Iterator[dg.DagsterInstance]:
    """DAGSTER_HOME's instance, holding its connections, disposed of on exit."""
    with dg.DagsterInstance.get() as instance:
        yield hold_connections(instance)

"""The Dagster instance of a command-line process (`make run`, `make rebuild`, `make backfill`)
and of the test session: DAGSTER_HOME's, with one held connection per storage.

dagster-postgres opens a new connection for every storage call (its engines use NullPool, so
that many short-lived instances do not accumulate connections): about 140 of them for one
in-process run of a source. The webserver instead holds one per storage, through the instance's
own `optimize_for_webserver`; a process that executes runs in process does the same, which made a
source's run about 40 % faster on the embedded server.

A command's runs also capture no compute logs: the command prints its own lines, and the runs'
event logs (stack traces included) stay in the storage for `make ui`. Capturing redirects the
process's stdout and stderr into files for every run; the UI's instance keeps doing so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.instance.ref import InstanceRef

# connections older than this are replaced: a managed PostgreSQL may drop idle ones
POOL_RECYCLE_SECONDS = 600
# beyond the one held connection, for the threads of a run (Facebook's accounts side by side)
POOL_MAX_OVERFLOW = 10
NO_COMPUTE_LOGS = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}


def hold_connections(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """Let `instance`'s PostgreSQL storages keep their connections (no statement timeout)."""
    instance.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_MAX_OVERFLOW
    )
    return instance


@contextmanager
def command_instance() -> Iterator[dg.DagsterInstance]:
    """DAGSTER_HOME's instance, holding its connections, without compute logs, disposed of on
    exit."""
    ref = InstanceRef.from_dir(os.environ["DAGSTER_HOME"], overrides=NO_COMPUTE_LOGS)
    with dg.DagsterInstance.from_ref(ref) as instance:
        yield hold_connections(instance)

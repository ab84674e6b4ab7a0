"""One run in a process of its own, for a test to SIGKILL or to start beside others:
`python -m tests.reliability.crash_runner JOB [TAGS_JSON] [--reload]`. A job runs as `make run`
starts it; with --reload a source's job re-reads the whole source (as `make backfill ... ALL=1`).
The instance is DAGSTER_HOME's, the settings the environment's, so the run's events land in the
storage the test inspects afterwards."""

from __future__ import annotations

import json
import sys

import dagster as dg

from assets.jobs import SOURCES, source_job_name
from tests.reliability.harness import QUIET, run_source


def main(job: str, tags: dict[str, str], reload: bool) -> int:
    from definitions import defs

    sources = {source_job_name(s): s for s in SOURCES}
    with dg.DagsterInstance.get() as instance:
        if job in sources:
            result = run_source(instance, sources[job], reload=reload, quick=False, tags=tags)
        else:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False, tags=tags, run_config=QUIET
            )
    return 0 if result.success else 1


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--reload"]
    sys.exit(main(args[0], json.loads(args[1]) if len(args) > 1 else {}, "--reload" in sys.argv))

"""A job shaped like refresh_amocrm for the run monitoring test, loaded in a second instead of
the project's definitions: its step holds the run (as a slow load does) while the run's `hold`
tag is set, and returns at once otherwise. Run as a script, it executes one held run in this
process, as `make run` (refresh.py) executes its runs, with the tags given as JSON."""

import json
import sys
import time

import dagster as dg


@dg.op
def load_leads(context: dg.OpExecutionContext) -> None:
    if context.run.tags.get("hold"):
        time.sleep(600)


@dg.job(name="refresh_amocrm", executor_def=dg.in_process_executor)
def refresh_amocrm() -> None:
    load_leads()


defs = dg.Definitions(jobs=[refresh_amocrm])

if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        refresh_amocrm.execute_in_process(instance=instance, tags=json.loads(sys.argv[1]))

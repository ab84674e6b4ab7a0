"""One full refresh, as `make run` does it (`python refresh.py`): every source in one run, then
core and marts; `--full-rebuild` (`make rebuild`) recomputes every day of core and marts.

The warehouse is WAREHOUSE_URL or else the embedded server; vendors are whatever the environment
and `.env` (or the file ENV_FILE names) configure. Prints one line per source (rows and seconds,
or the sentence that says why it failed), then the dashboard tables. Exit codes: 0 every run
succeeded, 1 a source or the models failed (its branch stays stale; the marts are still rebuilt
from the last good rows), 2 a setting the whole refresh needs is malformed (one line naming it).
"""

import sys

from assets.jobs import failure_messages
from commands.runs import check_common_settings, dashboard, execute, run_all
from resources import embedded_pg
from resources.dagster_instance import command_instance
from resources.environment import configuration_errors, prepare_environment
from resources.warehouse import WarehouseResource


def full_rebuild() -> int:
    """`make rebuild`: recompute every day of core and marts, e.g. after a model's SQL changed."""
    with embedded_pg.owned_server():
        prepare_environment()
        with command_instance() as instance:
            result = execute("full_rebuild_models", instance)
        for step, message in failure_messages(result).items():
            print(f"{step}: {message}")
    print("full rebuild", "done" if result.success else "FAILED")
    return 0 if result.success else 1


def refresh() -> int:
    with embedded_pg.owned_server():
        prepare_environment()
        check_common_settings()
        warehouse = WarehouseResource.from_environment()
        warehouse.apply_ddl()
        with command_instance() as instance:
            outcome = run_all(instance, warehouse)
        print()
        print(dashboard(warehouse))
    return 0 if all(outcome.values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--full-rebuild"]:
        return configuration_errors(full_rebuild)
    return configuration_errors(refresh)


if __name__ == "__main__":
    sys.exit(main())

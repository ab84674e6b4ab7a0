"""`make diagnose` (`python -m commands.diagnose`): every diagnostic of the registry, its verdicts
stored in marts.integration_health, and the old dashboard's report as JSON; exit 0 ok, 1 warning,
2 error. `--health` prints {"status", "service", "timestamp", "problems"} from the health probe
(health/probe.py), calling no vendor, exit 0/1/2. What `not_configured`, `success` and
`overall_status` mean, and how a malformed setting ends (one line, exit 2): the registry's
docstring, checks/diagnostics.py.
"""

import argparse
import json
import sys

from checks.asset_checks import previous_details
from checks.diagnostics import DIAGNOSTICS, Thresholds, report, run_all
from checks.integration_health import record
from definitions import resources as defined_resources
from health.probe import probe_environment
from resources import embedded_pg
from resources.dagster_instance import command_instance
from resources.environment import configuration_errors, prepare_environment
from resources.settings import reporting_tz
from resources.warehouse import WarehouseResource

SERVICE = "traffic-warehouse"
EXIT_CODES = {"ok": 0, "warning": 1, "error": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commands.diagnose")
    parser.add_argument("--health", action="store_true", help="the health probe's short object")
    args = parser.parse_args(argv)
    if args.health:
        return health()
    return configuration_errors(diagnose)


def health() -> int:
    """The daemon, the runs and the sources' freshness, without calling any vendor."""
    probe = probe_environment()
    print(json.dumps({"status": "ok" if probe.healthy else "error", "service": SERVICE,
                      "timestamp": probe.checked_at.isoformat(),
                      "problems": probe.problems}, ensure_ascii=False, indent=2))  # fmt: skip
    return probe.exit_code


def diagnose() -> int:
    with embedded_pg.owned_server():
        prepare_environment()
        reporting_tz()
        limits = Thresholds.from_env()
        warehouse = WarehouseResource.from_environment()
        warehouse.apply_ddl()
        with command_instance() as instance:
            previous = {spec.name: previous_details(instance, spec) or {} for spec in DIAGNOSTICS}
            diagnostics = run_all({**defined_resources, "warehouse": warehouse}, limits, previous)
            record(instance, warehouse, diagnostics, "make diagnose")
    result = report(diagnostics)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_CODES[result["data"]["overall_status"]]


if __name__ == "__main__":
    sys.exit(main())

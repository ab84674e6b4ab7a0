"""`make replay SOURCE=...` / `python -m commands.replay replay SOURCE`: re-load a source's
quarantined records once their cause is fixed (assets/quarantine.py: how), then rebuild core and
marts for the days whose rows changed. Exit codes: 0 done, 1 records still quarantined or a run
failed, 2 a configuration error.
"""

import argparse
import os
import sys
from collections.abc import Iterator

import dagster as dg

from assets.quarantine import Replayed, replay
from commands.backfill import _Parser, rebuild_downstream, source_command
from resources.warehouse import WarehouseResource


def summary(outcome: list[Replayed]) -> Iterator[str]:
    for done in outcome:
        if done.unsupported:
            yield (f"  {done.entity}: {done.records} records stay (replay covers no such table; "
                   "its next run reloads it whole)")  # fmt: skip
        else:
            yield (f"  {done.entity}: {done.records} records replayed, {done.loaded} loaded, "
                   f"{done.still_quarantined} still quarantined")  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    from assets.sources import SOURCES

    parser = _Parser(prog="quarantine", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=["replay"])
    parser.add_argument("source", choices=SOURCES)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, instance: dg.DagsterInstance) -> int:
    from definitions import resources

    warehouse = WarehouseResource.from_environment()
    warehouse.apply_ddl()
    outcome = replay(warehouse, args.source, resources)
    print(f"{args.source}: quarantine replayed")
    print("\n".join(summary(outcome)) or "  nothing quarantined")
    built = rebuild_downstream(args.source, instance)
    left = any(d.still_quarantined or d.unsupported for d in outcome)
    return 0 if built and not left else 1


def main(argv: list[str] | None = None) -> int:
    return source_command(parse, run, argv)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())

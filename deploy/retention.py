"""Run and event-log retention: `python -m deploy.retention [--days 90] [--dry-run]`.

Dagster's `retention:` setting purges schedule, sensor and automation ticks only; runs and their
event logs stay in its storage for ever. This deletes finished runs (and, with them, their event
logs) created more than `--days` ago, except a run that holds an asset's latest materialization:
the automation reads those (a deleted one would make the asset look never materialized and
rebuild it) and the UI shows them. Runs that are queued or in progress are never touched.
Exit 0; one line saying how many runs were deleted and kept. The instance is DAGSTER_HOME's
(deploy/kubernetes/run-retention-cronjob.yaml runs it daily).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
BATCH = 200


def latest_materialization_runs(instance: dg.DagsterInstance) -> set[str]:
    """The runs that hold some asset's latest materialization."""
    keys = instance.get_asset_keys()
    events = instance.get_latest_materialization_events(keys)
    return {event.run_id for event in events.values() if event is not None}


def old_finished_runs(instance: dg.DagsterInstance, before: datetime) -> Iterable[str]:
    cursor = None
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, created_before=before),
            limit=BATCH,
            cursor=cursor,
            ascending=True,
        )
        if not records:
            return
        for record in records:
            yield record.dagster_run.run_id
        cursor = records[-1].dagster_run.run_id


def purge(
    instance: dg.DagsterInstance, days: int, now: datetime | None = None, dry_run: bool = False
) -> tuple[int, int]:
    """Delete the finished runs older than `days`; (deleted, kept because they are latest)."""
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    keep = latest_materialization_runs(instance)
    candidates = list(old_finished_runs(instance, before))
    deleted = [run_id for run_id in candidates if run_id not in keep]
    if not dry_run:
        for run_id in deleted:
            instance.delete_run(run_id)
    return len(deleted), len(candidates) - len(deleted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.retention", description=__doc__)
    parser.add_argument("--days", type=int, default=90, help="keep runs this recent (90)")
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    with dg.DagsterInstance.get() as instance:
        deleted, kept = purge(instance, args.days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {deleted} finished runs older than {args.days} days (with their event logs);"
        f" kept {kept} that hold an asset's latest materialization"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make backfill` / `python -m commands.backfill`: re-load a source over a range of days, as one
run.

    python -m commands.backfill facebook --from 2026-09-01 --to 2026-10-30   # insights partitions
    python -m commands.backfill amocrm --from 2026-09-15                      # leads and events
    python -m commands.backfill supabase_main --all                           # every table, whole

Facebook: one run of the partitioned insights asset over the partition range (the same run the
UI's partition picker launches, `BackfillPolicy.single_run()`); `--to` defaults to today.
AmoCRM and Supabase: the source's job with `reload_from` in its run config (the launchpad form),
so every table re-reads from that day (or everything with `--all`). Rows merge by key: a
re-load never duplicates and re-running it changes nothing. Then core and marts rebuild the
days whose rows changed. Runs land in the Dagster instance (`make ui` shows them), with a
progress bar here and counts, rate and ETA in the run's log.

Exit codes: 0 done, 1 a run failed (its message printed), 2 a configuration error (one line).
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import dagster as dg

from resources.dagster_instance import command_instance

# The Dagster console shows warnings only; the progress bar and the summary say the rest.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class UsageError(Exception):
    """A configuration mistake: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def parse(argv: list[str]) -> argparse.Namespace:
    from assets.sources import SOURCES

    parser = _Parser(prog="backfill", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("source", choices=SOURCES)
    parser.add_argument("--from", dest="since", metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="until", metavar="YYYY-MM-DD")
    parser.add_argument("--all", action="store_true", help="AmoCRM/Supabase: the whole source")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.since, args.until = _day(args.since, "--from"), _day(args.until, "--to")
    if args.source == "facebook":
        if args.all or args.since is None:
            raise UsageError("backfill facebook: give --from YYYY-MM-DD (and --to, default today)")
        if args.until is not None and args.until < args.since:
            raise UsageError(f"backfill facebook: --to {args.until} is before --from {args.since}")
    else:
        if args.until is not None:
            raise UsageError(f"backfill {args.source}: re-reads from a day up to now; drop --to")
        if args.all == (args.since is not None):
            raise UsageError(f"backfill {args.source}: give either --from YYYY-MM-DD or --all")
    return args


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"backfill: {flag} must be a day as YYYY-MM-DD (got {value!r})") from None


def check_settings(source: str) -> None:
    """Every setting the source needs is there before a run starts: one ConfigError naming
    each one missing (a token pair the warehouse holds stands in for AmoCRM's first token),
    then the source's own check of their values."""
    from definitions import resources
    from resources.warehouse import WarehouseResource

    resources[source].require_all(WarehouseResource.from_environment())
    if source == "facebook":
        resources["facebook"].accounts()
        resources["facebook"].open().close()


def plan_run(args: argparse.Namespace) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(job, run tags, run config) of the one run that re-loads the source."""
    from assets.jobs import partition_range_tags, source_job_name
    from resources.canonical import CANONICAL_TABLES

    if args.source == "facebook":
        from assets.facebook import INSIGHTS_PARTITIONS

        zone = ZoneInfo(INSIGHTS_PARTITIONS.timezone or "UTC")
        until = args.until or datetime.now(zone).date()
        return "backfill_facebook_insights", partition_range_tags(args.since, until), {}
    reload = {"config": {"reload_from": "all" if args.all else args.since.isoformat()}}
    if args.source == "amocrm":
        ops = {"raw_amocrm__leads": reload, "raw_amocrm__lead_events": reload}
    else:
        ops = {f"{t.raw_schema}__{t.name}": reload for t in CANONICAL_TABLES
               if t.source == args.source}  # fmt: skip
    return source_job_name(args.source), {}, {"ops": ops}


def downstream_models(source: str) -> list[dg.AssetKey]:
    """The core and marts models that read the source (the others have nothing to rebuild)."""
    from assets.jobs import MODEL_GROUPS
    from assets.sources import SOURCE_ASSETS
    from definitions import defs

    selection = dg.AssetSelection.assets(*SOURCE_ASSETS[source]).downstream()
    models = selection & dg.AssetSelection.groups(*MODEL_GROUPS)
    return sorted(models.resolve(defs.resolve_asset_graph()))


def _tqdm_bar(what: str, total: float | None, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, desc=what, unit=unit, leave=True, dynamic_ncols=True)


def _counts(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if "rows_read" not in materialization.metadata:
            continue
        meta = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        line = (f"  {name}: {meta.get('rows_read')} rows read, {meta.get('rows_inserted', 0)} new,"
                f" {meta.get('rows_updated', 0)} updated")  # fmt: skip
        if line not in lines:
            lines.append(line)
    return lines


def run(args: argparse.Namespace, instance: dg.DagsterInstance) -> int:
    from assets.jobs import RANGE_END, RANGE_START, failure_messages
    from assets.progress import attach_bar
    from definitions import defs

    job, tags, run_config = plan_run(args)
    if not args.no_progress and sys.stderr.isatty():
        attach_bar(_tqdm_bar)
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={"source": args.source, "backfill": "cli", **tags},
        run_config={**QUIET, **run_config},
    )
    attach_bar(None)
    what = "everything" if args.all else f"from {args.since}"
    if tags:
        what = f"days {tags[RANGE_START]}..{tags[RANGE_END]}"
    print(f"{job} ({what}): {'ok' if result.success else 'FAILED'} in "
          f"{time.perf_counter() - started:.1f} s, run {result.run_id}")  # fmt: skip
    print("\n".join(_counts(result)))
    for step, message in failure_messages(result).items():
        print(f"  {step}: {message}")
    return 0 if result.success and rebuild_downstream(args.source, instance) else 1


def rebuild_downstream(source: str, instance: dg.DagsterInstance) -> bool:
    """Rebuild the core and marts days the source's changed rows touch; say how it went."""
    from definitions import defs

    models = defs.resolve_job_def("rebuild_models").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        asset_selection=downstream_models(source),
    )
    print(f"core and marts rebuilt for the touched days: {'ok' if models.success else 'FAILED'}")
    return models.success


def main(argv: list[str] | None = None) -> int:
    return source_command(parse, run, argv)


def source_command(
    parse: Callable[[list[str]], argparse.Namespace],
    run: Callable[[argparse.Namespace, dg.DagsterInstance], int],
    argv: list[str] | None,
) -> int:
    """A command on one source (backfill, quarantine replay): its arguments, the environment,
    the source's settings, then `run` in the Dagster instance; a mistake is one line, exit 2."""
    from resources import embedded_pg
    from resources.environment import configuration_errors, prepare_environment

    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2

    def start() -> int:
        with embedded_pg.owned_server():
            prepare_environment()
            check_settings(args.source)
            with command_instance() as instance:
                return run(args, instance)

    # a missing or wrong setting (an unreachable warehouse too): one sentence naming it
    return configuration_errors(start)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())

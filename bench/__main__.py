"""`make bench`: issue 14's figures in one run, each against its baseline measured in the same
run and its target; prints one table, writes bench/results.json and draws bench/results.png
(each figure as a share of its target).

`python -m bench [--rows N] [--runs R] [--days D] [--out DIR] [--only SECTION ...]
[--server URI]`: N rows for the loads, the dashboard and the school's sandbox (a million by
default; the models' sandbox has N/10 leads over D days, loaded through every source's job,
then grown in SQL to N);
each figure is the median of R runs where a run is minutes at most (dlt, the sandbox, the
dashboard: one); the databases are an embedded server's of .local/bench-pgdata, or those of
the PostgreSQL server URI names (the smoke test's). `--only facebook` prints the Facebook
backfill's own table instead (issue 12's figures).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench import peer_env
from bench.figures import Figure, Partial, git_state, table, write_results
from resources import embedded_pg

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / ".local" / "bench-pgdata"
COMMITTED, DIRTY_OUT = ROOT / "bench", ROOT / ".local" / "bench-results"
FULL_ROWS = 1_000_000
Section = Callable[[str, argparse.Namespace], list[Figure]]


def _sections() -> dict[str, Section]:
    # imported here, not at the top: each process a section spawns imports this module again
    # (multiprocessing's spawn), and must not pay for every section's libraries (Dagster, GX)
    from bench import amocrm_load, api_latency, models, supabase_figures, world_scale

    return {
        "supabase": lambda server, a: supabase_figures.measure(server, a.rows, a.runs),
        "amocrm": lambda server, a: [amocrm_load.measure(server, a.rows / FULL_ROWS, a.runs)],
        "models": lambda server, a: models.measure(server, a.rows, a.days, a.runs),
        "api": lambda server, a: [
            api_latency.measure(server, a.rows, a.days, min(200, a.rows // 100))
        ],
        "sandbox": lambda server, a: world_scale.measure(server, a.rows, a.days),
    }


def _arguments(sections: dict[str, Section]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--out", type=Path, default=COMMITTED)
    parser.add_argument("--only", nargs="+", choices=[*sections, "facebook"])
    parser.add_argument("--server", help="a running PostgreSQL server's owner URI")
    return parser.parse_args()


def _measure(
    server: str, args: argparse.Namespace, sections: dict[str, Section]
) -> tuple[list[Figure], list[str]]:
    figures, failed = [], []
    for name in args.only or list(sections):
        started = time.perf_counter()
        try:
            measured = sections[name](server, args)
        except Partial as partial:
            for failure in partial.failures:
                traceback.print_exception(failure)
            failed.append(name)
            measured = partial.figures
        except Exception:  # one section's failure must not lose the others' figures
            traceback.print_exc()
            failed.append(name)
            measured = []
        figures += measured
        # each section's figures as it ends: a run cut short still told what it measured
        progress = "".join(f"\n  {f.name}: {f.value:,.4g} {f.unit}" for f in measured)
        print(f"{name}: {time.perf_counter() - started:.0f} s{progress}", file=sys.stderr,
              flush=True)  # fmt: skip
    return figures, failed


@contextmanager
def _server(uri: str | None) -> Iterator[str]:
    if uri is not None:
        yield uri
        return
    with embedded_pg.owned_server(PGDATA):
        yield embedded_pg.start(PGDATA, databases=())


def _out(args: argparse.Namespace, git: dict[str, Any]) -> Path:
    """Where the results go: bench/ (committed) only from a clean tree, whose commit they name."""
    if not git["dirty"] or args.out != COMMITTED:
        return args.out
    print(f"the tree has uncommitted changes: the results go to {DIRTY_OUT}, not {COMMITTED} "
          "(what is committed there names the commit it measured)", file=sys.stderr)  # fmt: skip
    return DIRTY_OUT


def main() -> None:
    sections = _sections()
    args = _arguments(sections)
    git = git_state()  # the code measured is the code as the run starts
    with _server(args.server) as server:
        if args.only == ["facebook"]:
            from bench import facebook_backfill

            rows = facebook_backfill.run(server)
            print(tabulate(rows, facebook_backfill.HEADERS, floatfmt=".2f"))
            return
        figures, failed = _measure(server, args, sections)
    print(table(figures))
    out = _out(args, git)
    out.mkdir(parents=True, exist_ok=True)
    results, chart = out / "results.json", out / "results.png"
    settings = {"rows": args.rows, "runs": args.runs, "days": args.days, "failed": failed}
    write_results(results, figures, settings, git)
    subprocess.run([peer_env.python(), ROOT / "bench" / "chart.py", results, chart], check=True)
    print(f"{sum(f.met for f in figures)}/{len(figures)} targets met; {results}, {chart}")
    if failed:
        raise SystemExit(f"sections failed: {', '.join(failed)} (their traceback above)")


if __name__ == "__main__":
    main()

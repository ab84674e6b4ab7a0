"""Supabase's figures: the REST full load and the direct-database path against a bare COPY,
the hourly load after 1 % of rows changed and 0.1 % deleted (its time against the full load's,
its requests against today's full id scan), a snapshot table re-read with nothing changed
against its full load, peak RSS, and dlt's `rest_api` on the same server.
The loads are `bench.loads`' (each in a process of its own, the simulator in another)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import psycopg

from bench import loads, peer_env
from bench.figures import Figure, Partial, Target, median_of
from bench.supabase_load import fresh_db, source_database

PEER = peer_env.ROOT / "bench" / "dlt_peer.py"
PEER_DB = "bench_peer"
FIGURES = ("Supabase REST full load", "the same load against dlt rest_api",
           "peak RSS of a full REST load", "direct-database path full load",
           "deletion detection, 0.1 % deleted",
           "incremental Supabase load, 1 % changed",
           "full re-read with nothing changed")  # fmt: skip


def _rest(server: str, rows: int, runs: int) -> tuple[list[Figure], float]:
    rest, every = median_of(runs, lambda: loads.measure_supabase_rest(server, rows),
                            key=lambda r: r["x_copy"])  # fmt: skip
    rss = max(r["peak_rss_mib"] for r in every)
    figures = [
        Figure(
            "Supabase REST full load",
            rest["seconds"],
            "s",
            Target(2.0),
            baseline=rest["copy_seconds"],
            ratio=rest["x_copy"],
            detail=f"{rows:,} rows, {rest['rows_per_second']:,} rows/s, "
            f"{rest['requests']} requests; baseline COPY",
        )  # fmt: skip
    ]
    figures.append(
        Figure(
            "peak RSS of a full REST load",
            rss,
            "MiB",
            Target(300, of_ratio=False),
            detail=f"{rows:,} rows, the load's own process, worst of {runs}",
        )  # fmt: skip
    )
    return figures, rest["seconds"]


def _direct(server: str, rows: int, runs: int) -> Figure:
    direct, _ = median_of(runs, lambda: loads.measure_supabase_direct(server, rows),
                          key=lambda r: r["x_copy"])  # fmt: skip
    return Figure("direct-database path full load", direct["seconds"], "s", Target(1.5),
                  baseline=direct["copy_seconds"], ratio=direct["x_copy"],
                  detail=f"{rows:,} rows; baseline COPY")  # fmt: skip


def _incremental(server: str, rows: int) -> list[Figure]:
    """One run (a full load and the hourly one: minutes at a million rows): 1 % of the rows
    changed and 0.1 % deleted at random, as an hour of life spreads them; its requests are the
    same in every run."""
    hourly = loads.measure_supabase_incremental(server, rows, 0.01, 0.001)
    requests, scan = hourly["deletion_requests"], hourly["id_scan_requests"]
    return [
        Figure(
            "deletion detection, 0.1 % deleted",
            requests,
            "requests",
            Target(0.05),
            baseline=scan,
            ratio=requests / scan,
            detail=f"{hourly['rows_deleted']} of {hourly['deleted']} deletions (at random) "
            f"marked by {hourly['deletion_method']} in {hourly['deletion_seconds']:.2f} s; "
            "deletion detection's own requests; baseline: a scan of every id",
        ),  # fmt: skip
        Figure(
            "incremental Supabase load, 1 % changed",
            hourly["load_seconds"],
            "s",
            Target(0.03),
            baseline=hourly["full_seconds"],
            ratio=hourly["x_full"],
            detail=f"{hourly['rows_updated']:,} of {hourly['changed']:,} changes merged; "
            "the source indexed on (updated_at, id); "
            f"deletion detection apart ({hourly['hourly_seconds'] - hourly['load_seconds']:.1f} "
            "s more); baseline: the full load",
        ),  # fmt: skip
    ]


def _reread(server: str, rows: int) -> list[Figure]:
    """A table without a change column is re-read whole every run (the snapshot strategy).
    Measured at 200k rows (load average 4.7-5.7): fetching, parsing and hashing every row is
    0.40 of the full load, the hash lookups by key that find every row unchanged 0.30 more
    (0.76 in all; before the mirror was analyzed after its first load they planned a scan of
    the whole mirror per batch: 0.94). Target 0.5: a re-read must read, parse and hash the whole
    table but writes nothing, so proving it unchanged may cost at most a quarter of reading it."""
    reread = loads.measure_supabase_reread(server, rows)
    return [
        Figure(
            "full re-read with nothing changed",
            reread["reread_seconds"],
            "s",
            Target(0.5),
            baseline=reread["full_seconds"],
            ratio=reread["x_full"],
            detail=f"{rows:,} rows, snapshot strategy, {reread['rows_skipped_by_hash']:,} "
            "skipped by their hash; baseline: its full load into an empty warehouse",
        )  # fmt: skip
    ]


def dlt_seconds(server: str, rows: int) -> float:
    """dlt's `rest_api` → postgres with a merge on id, the same rows and simulator process."""
    python = peer_env.python()
    source = source_database(server, loads.SOURCE_DB, rows)
    destination = fresh_db(server, PEER_DB)
    with loads.postgrest_process(source) as (url, key):
        env = {**os.environ, "PEER_URL": url, "PEER_KEY": key, "PEER_DSN": destination}
        done = subprocess.run([python, PEER], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dlt's run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    seconds = float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    with psycopg.connect(destination) as conn:
        loaded = conn.execute("SELECT count(*) FROM peer.landing_leads").fetchone()
    if loaded is None or loaded[0] != rows:
        raise RuntimeError(f"dlt loaded {loaded} rows of {rows}")
    return seconds


def _against_dlt(server: str, rows: int, rest_seconds: float) -> Figure:
    peer = dlt_seconds(server, rows)
    return Figure(
        "the same load against dlt rest_api",
        rest_seconds,
        "s",
        Target(8.0, at_most=False),
        baseline=peer,
        ratio=peer / rest_seconds,
        detail=f"dlt {rows / peer:,.0f} rows/s, merge on id, keyset pages, one run; "
        "ratio: how many times faster",
    )


def measure(server: str, rows: int, runs: int) -> list[Figure]:
    """Every figure that could be measured; a failed one raises `Partial` with the others."""
    figures, rest_seconds = _rest(server, rows, runs)
    steps: list[Callable[[], list[Figure]]] = [
        lambda: [_against_dlt(server, rows, rest_seconds)],
        lambda: [_direct(server, rows, runs)],
        lambda: _incremental(server, rows),
        lambda: _reread(server, rows),
    ]
    failures: list[BaseException] = []
    for step in steps:
        try:
            figures += step()
        except Exception as failure:  # the other loads' figures still count
            failures.append(failure)
    order = {name: i for i, name in enumerate(FIGURES)}
    figures.sort(key=lambda f: order[f.name])
    if failures:
        raise Partial(figures, failures)
    return figures

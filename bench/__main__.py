"""`make bench`: speed and memory of the load paths, each with a baseline run in the same process.

Figures, not pass/fail: tests check correctness, this prints rows/s, requests/s and ratios.
`python -m bench --only supabase|amocrm|facebook|models|api` runs one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from bench import amocrm_load, api_latency, facebook_backfill, models_rebuild, supabase_load
from resources import embedded_pg

PGDATA = Path(__file__).resolve().parent.parent / ".local" / "bench-pgdata"
BENCHES = {
    "supabase": (supabase_load.run, supabase_load.HEADERS),
    "amocrm": (amocrm_load.run, amocrm_load.HEADERS),
    "facebook": (facebook_backfill.run, facebook_backfill.HEADERS),
    "models": (models_rebuild.run, models_rebuild.HEADERS),
    "api": (api_latency.run, api_latency.HEADERS),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", choices=sorted(BENCHES))
    args = parser.parse_args()
    chosen = [args.only] if args.only else list(BENCHES)
    with embedded_pg.owned_server(PGDATA):
        server = embedded_pg.start(PGDATA, databases=())
        for name in chosen:
            run, headers = BENCHES[name]
            print(tabulate(run(server), headers, floatfmt=".2f"), end="\n\n", flush=True)
        embedded_pg.stop(PGDATA)


if __name__ == "__main__":
    main()

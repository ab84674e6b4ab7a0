"""The peer: dlt's `rest_api` source reading the same PostgREST simulator into PostgreSQL with a
merge on `id`, run by `make bench` with the interpreter of its own environment
(.local/bench-venv: dlt is not a dependency of the project). Pages by keyset (`id=gt.<last>`,
1000 rows), as our loader does, so the two differ in the loader alone.

`python bench/dlt_peer.py` with PEER_URL (the simulator), PEER_KEY (its service-role key) and
PEER_DSN (the destination) in the environment, never on a command line a process list shows,
loads into PEER_DSN's schema `peer` and prints
`{"seconds": ...}`: the seconds of `pipeline.run` (imports and dlt's start-up excluded, as our
loader's are).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import dlt  # type: ignore[import-not-found]
from dlt.sources.helpers.rest_client.paginators import (  # type: ignore[import-not-found]
    BasePaginator,
)
from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]

PAGE = 1000


class Keyset(BasePaginator):  # type: ignore[misc]
    """The next page is the rows after the last id seen; a short page is the last."""

    def __init__(self) -> None:
        super().__init__()
        self.last: Any = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        if not data or len(data) < PAGE:
            self._has_next_page = False
        else:
            self.last = data[-1]["id"]

    def update_request(self, request: Any) -> None:
        request.params["id"] = f"gt.{self.last}"


def _credentials(dsn: str) -> str:
    """The URI with its socket directory (libpq's `host` in the query, which dlt drops) as the
    URI's host, percent-encoded as libpq reads it."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    host = quote(query.get("host") or parts.hostname or "", safe="")
    port = query.get("port") or parts.port or 5432
    return f"postgresql://{parts.username}:{parts.password or ''}@{host}:{port}{parts.path}"


def main() -> None:
    url, key, dsn = os.environ["PEER_URL"], os.environ["PEER_KEY"], os.environ["PEER_DSN"]
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    source = rest_api_source(
        {
            "client": {
                "base_url": f"{url}/rest/v1/",
                "headers": {"apikey": key, "Authorization": f"Bearer {key}"},
                "paginator": Keyset(),
            },
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "landing_leads",
                    "endpoint": {
                        "path": "landing_leads",
                        "params": {"order": "id", "limit": PAGE},
                        "data_selector": "$",
                    },
                }
            ],
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as home:
        pipeline = dlt.pipeline(
            pipeline_name="bench_peer",
            destination=dlt.destinations.postgres(credentials=_credentials(dsn)),
            dataset_name="peer",
            pipelines_dir=home,
        )
        started = time.perf_counter()
        pipeline.run(source)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()

"""How fresh every answer is: per source its last success (`as_of`) and whether it is stale."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resources.settings import SOURCE_STALE_WARNING


def freshness(rows: list[dict[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """`rows` from sql/api/freshness.sql. A source is stale when its latest attempt failed or
    its last success is older than the warning bound the UI's freshness policies use."""
    now = now or datetime.now(UTC)
    sources = []
    for row in rows:
        as_of = row["last_success_at"]
        late = as_of is None or now - as_of > SOURCE_STALE_WARNING
        sources.append({
            "source": row["source"], "as_of": as_of, "last_attempt_at": row["last_attempt_at"],
            "status": row["status"], "stale": late or row["status"] != "ok",
            "error": row["error"],
        })  # fmt: skip
    return {
        "as_of": {s["source"]: s["as_of"] for s in sources},
        "stale": [s["source"] for s in sources if s["stale"]],
        "sources": sources,
        "stale_after_minutes": int(SOURCE_STALE_WARNING.total_seconds() // 60),
    }

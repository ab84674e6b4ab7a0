"""How a source step succeeds or fails: every attempt is recorded, errors reach the UI as one line.

Transient errors (after the client's own retries) may be retried by Dagster with backoff; terminal
ones (bad key, missing variable, unpaid subscription) are not, because only a person can fix them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import dagster as dg

from resources.errors import SourceError
from resources.warehouse import WarehouseResource

T = TypeVar("T")
OWNERS = ["team:data"]
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def run_source_step(
    context: dg.AssetExecutionContext, source: str, entity: str, step: Callable[[], T]
) -> T:
    warehouse: WarehouseResource = context.resources.warehouse
    try:
        result = step()
    except SourceError as exc:
        warehouse.record_attempt(source, entity, error=exc.message, run_id=context.run.run_id)
        # the dashboard learns of a stale source now, not when the next model rebuild runs
        warehouse.run_model("marts.source_freshness")
        context.log.error(exc.message)
        # `from None`: the client library's traceback says nothing the message doesn't
        raise dg.Failure(
            description=exc.message,
            metadata={"source": source, "entity": entity, "transient": exc.transient},
            allow_retries=exc.transient,
        ) from None
    warehouse.record_attempt(source, entity, run_id=context.run.run_id)
    warehouse.run_model("marts.source_freshness")
    return result

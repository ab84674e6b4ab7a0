"""Helpers every source's record parsing shares: the quarantine reason, unix timestamps, and
how far a cursor may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from resources.warehouse import Rejected


def rejected(record: dict[str, Any], exc: ValidationError, key: str = "id") -> Rejected:
    """A record pydantic refused, with a one-line reason per bad field, for ops.quarantine."""
    reason = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
    )
    return Rejected(str(record.get(key)), reason, record)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], record: dict[str, Any], key: str = "id") -> M | Rejected:
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        return rejected(record, exc, key)


def from_unix(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


# How far behind the source's clock an incremental cursor stays at most: a row dated in the
# future (clock skew, bad data) must not make the next runs skip what is written until then.
CLOCK_MARGIN = timedelta(minutes=1)


def unix_not_after(seconds: int, now: datetime) -> int:
    """A unix-time cursor, clamped at the source's `now` minus CLOCK_MARGIN."""
    return min(seconds, int((now - CLOCK_MARGIN).timestamp()))

"""Helpers every source's record parsing shares: the quarantine reason, unix timestamps, and
how far a cursor may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from resources.canonical import MONEY_LIMIT
from resources.warehouse import Rejected


def rejected(record: Any, exc: ValidationError, key: str = "id") -> Rejected:
    """A record pydantic refused, with a one-line reason per bad field, for ops.quarantine."""
    reason = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
    )
    return Rejected(record_key(record, key), reason, record)


def record_key(record: Any, key: str) -> str | None:
    """A record's key as text, None when it has none (or is not an object)."""
    value = record.get(key) if isinstance(record, dict) else None
    return None if value is None else str(value)


def not_an_object(record: Any) -> Rejected:
    return Rejected(None, f"not a JSON object but a {type(record).__name__}", record)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], record: Any, key: str = "id") -> M | Rejected:
    """The vendor's record as `model`, or the reason it is not one (any JSON value may come)."""
    if not isinstance(record, dict):
        return not_an_object(record)
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        return rejected(record, exc, key)


# an amount the models can hold (see MONEY_LIMIT)
Money = Annotated[Decimal, Field(gt=-MONEY_LIMIT, lt=MONEY_LIMIT)]


def from_unix(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


# How far behind the source's clock an incremental cursor stays at most: a row dated in the
# future (clock skew, bad data) must not make the next runs skip what is written until then.
CLOCK_MARGIN = timedelta(minutes=1)


def unix_not_after(seconds: int, now: datetime) -> int:
    """A unix-time cursor, clamped at the source's `now` minus CLOCK_MARGIN."""
    return min(seconds, int((now - CLOCK_MARGIN).timestamp()))

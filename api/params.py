"""Query parameters, checked before any SQL runs: a bad one is a 422 that names it and what is
allowed. Values only ever reach SQL as bound parameters, never as text of a statement.

The checks are `async def`: they do no I/O, and FastAPI runs a plain `def` dependency in its
thread pool, a hand-off per parameter per request (milliseconds on a busy machine)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Query, Request

from api.settings import API_FUNNELS, DEFAULT_RANGE_DAYS, MAX_RANGE_DAYS
from resources.settings import reporting_tz

FROM_DOC = f"first day, YYYY-MM-DD (default: {DEFAULT_RANGE_DAYS - 1} days before `to`)"
TO_DOC = "last day, YYYY-MM-DD, inclusive (default: today in REPORTING_TZ)"
FUNNEL_DOC = f"one funnel: {', '.join(API_FUNNELS)}"
WHO_DOC = "one targetologist (a targetologist's token may name only itself)"
MAX_TEXT = 200  # longer than any name a source holds


class Refused(HTTPException):
    """A bad parameter (422); the app answers it only once the token is known good."""


def refuse(parameter: str, problem: str) -> Refused:
    return Refused(status_code=422, detail=f"{parameter}: {problem}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def only(*allowed: str):  # -> a FastAPI dependency
    """Refuse unknown or repeated parameters: a typo (`form=`) must not silently mean defaults."""

    async def check(request: Request) -> None:
        for name in request.query_params:
            if name not in allowed:
                known = ", ".join(allowed) or "none"
                raise refuse(name, f"unknown parameter (allowed: {known})")
            if len(request.query_params.getlist(name)) > 1:
                raise refuse(name, "given more than once")

    return check


@dataclass(frozen=True)
class Range:
    start: date
    end: date

    def as_params(self) -> dict[str, date]:
        return {"from": self.start, "to": self.end}


def _day(parameter: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise refuse(parameter, f"not a date (YYYY-MM-DD): {_shown(text)}") from None


async def day_range(
    start: str | None = Query(None, alias="from", description=FROM_DOC),
    end: str | None = Query(None, alias="to", description=TO_DOC),
) -> Range:
    last = _day("to", end) if end else datetime.now(ZoneInfo(reporting_tz())).date()
    first = _day("from", start) if start else last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first > last:
        raise refuse("from", f"{first} is after to={last}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise refuse("to", f"the range is {(last - first).days + 1} days; at most {MAX_RANGE_DAYS}")
    return Range(first, last)


async def funnel(funnel: str | None = Query(None, description=FUNNEL_DOC)) -> str | None:
    if funnel is not None and funnel not in API_FUNNELS:
        raise refuse(
            "funnel", f"unknown funnel {_shown(funnel)} (allowed: {', '.join(API_FUNNELS)})"
        )
    return funnel


async def targetologist(
    targetologist: str | None = Query(None, description=WHO_DOC),
) -> str | None:
    if targetologist is not None and not 0 < len(targetologist) <= MAX_TEXT:
        raise refuse("targetologist", f"must be 1 to {MAX_TEXT} characters")
    if targetologist is not None and "\x00" in targetologist:
        raise refuse("targetologist", "must not contain a NUL character")
    return targetologist

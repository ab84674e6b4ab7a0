"""The dashboard API: the old backend's endpoints, answered from the marts.

Nothing here calls a vendor: a source outage shows as a stale source in every answer's
`freshness`, with the last good numbers, never as a 500. Every data endpoint needs a bearer
token; PostgreSQL resolves it and row-level security limits the rows to what it may see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, get_type_hints

import dagster as dg
import orjson
import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from api import dashboard, models, params
from api.freshness import freshness
from api.reader import Query, Reader, Scope
from api.settings import SERVICE, ApiSettings
from checks import diagnostics as checks
from health.probe import probe
from resources.errors import ConfigError

DASHBOARD = "/api/traffic-dashboard"


def create_app(settings: ApiSettings, instance: dg.DagsterInstance | None = None) -> FastAPI:
    """`instance`: the Dagster instance whose daemon and runs the health endpoint judges."""
    app = FastAPI(title="Traffic dashboard API", description=__doc__, version="1.0")
    app.state.reader = Reader(settings.reader_url)
    app.state.settings = settings
    app.state.instance = instance
    _error_handlers(app)
    app.add_middleware(_NoStore)
    if settings.cors_origins:  # a frontend on another origin sends the bearer header itself
        origins = list(settings.cors_origins)
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"])  # fmt: skip
    app.include_router(router)
    app.include_router(dashboard.router)
    return app


class _NoStore:
    """Per-token answers (every /api/ path) never go into a shared cache. Plain ASGI: Starlette's
    BaseHTTPMiddleware costs a task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, no_store)


@dataclass(frozen=True)
class Bearer:
    """A request's token and the reader that opens its session (see `_read`)."""

    reader: Reader
    token: str


async def _bearer_of(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Bearer:
    # no I/O here: the token goes to PostgreSQL with the request's queries (`_read`)
    return Bearer(request.app.state.reader, _bearer(authorization))


router = APIRouter()
Db = Annotated[Bearer, Depends(_bearer_of)]
Days = Annotated[params.Range, Depends(params.day_range)]
Funnel = Annotated[str | None, Depends(params.funnel)]
Who = Annotated[str | None, Depends(params.targetologist)]


def _allow(*names: str) -> list[Any]:
    return [Depends(params.only(*names))]


class Json(Response):
    """orjson straight from the rows (the SQL hands money over as float8, already rounded as
    the marts round it): the answer's shape is declared by its response model for /docs and
    checked by the tests, not re-validated per request (that cost 4 ms for a month of every
    targetologist's days)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _read(
    db: Bearer, *queries: Query, who: str | None = None, admin: bool = False
) -> list[list[dict[str, Any]]]:
    """The queries' rows and, last, the freshness rows every answer carries, sent with the token
    in one round trip; then 401 for a token PostgreSQL does not know, 403 for a targetologist
    `who` (or, with `admin`, an admin's rows) the token may not read, whose rows RLS hid."""
    with db.reader.session(db.token, *queries, ("freshness", None)) as s:
        if s.scope is None:
            raise _unauthorized("token not accepted: unknown, expired or revoked")
        _allowed(s.scope, who)
        if admin:
            _admin_only(s.scope)
        return s.results


def _answer(data: dict[str, Any], fresh: list[dict[str, Any]]) -> Json:
    return Json({"success": True, "data": data, "freshness": freshness(fresh)})


def _query(days: params.Range, who: str | None, **extra: Any) -> dict[str, Any]:
    return {**days.as_params(), "targetologist": who, **extra}


@router.get(f"{DASHBOARD}/leads/total", response_model=models.LeadsTotal,
            dependencies=_allow("from", "to", "targetologist"))  # fmt: skip
def leads_total(db: Db, days: Days, who: Who) -> Response:
    """Leads (test leads counted apart) over the range, and per day."""
    rows, fresh = _read(db, ("leads_total", _query(days, who)), who=who)
    (total,), per_day = _split(rows)
    return _answer({**days.as_params(), **total, "days": per_day}, fresh)


@router.get(f"{DASHBOARD}/leads/by-funnel", response_model=models.LeadsByFunnel,
            dependencies=_allow("from", "to", "funnel", "targetologist"))  # fmt: skip
def leads_by_funnel(db: Db, days: Days, funnel: Funnel, who: Who) -> Response:
    """Leads and how many reached AmoCRM per funnel over the range, and per day."""
    rows, fresh = _read(db, ("leads_by_funnel", _query(days, who, funnel=funnel)), who=who)
    funnels, per_day = _split(rows)
    return _answer({**days.as_params(), "funnels": funnels, "days": per_day}, fresh)


@router.get(f"{DASHBOARD}/sales/total", response_model=models.SalesTotal,
            dependencies=_allow("from", "to", "funnel", "targetologist"))  # fmt: skip
def sales_total(db: Db, days: Days, funnel: Funnel, who: Who) -> Response:
    """Sales and revenue (per currency) per funnel over the range, and per day."""
    rows, fresh = _read(db, ("sales_total", _query(days, who, funnel=funnel)), who=who)
    totals, per_day = _split(rows)
    sales = sum(t["sales"] for t in totals)
    return _answer({**days.as_params(), "sales": sales, "totals": totals, "days": per_day}, fresh)


@router.get(f"{DASHBOARD}/targetologist-daily", response_model=models.TargetologistDaily,
            dependencies=_allow("from", "to", "targetologist"))  # fmt: skip
def targetologist_daily(db: Db, days: Days, who: Who) -> Response:
    """A targetologist's days: spend, leads, sales, revenue, CPL, CPA, ROAS, provisional."""
    params = _query(days, who)
    rows, totals, fresh = _read(
        db, ("targetologist_daily", params), ("targetologist_totals", params), who=who
    )
    data = {**days.as_params(), "currency": rows[0]["currency"] if rows else None,
            "rows": rows, "totals": totals}  # fmt: skip
    return _answer(data, fresh)


@router.get(f"{DASHBOARD}/targetologists", response_model=models.Targetologists,
            dependencies=_allow())  # fmt: skip
def targetologists(db: Db) -> Response:
    """The targetologists this token may read (a targetologist's token: itself)."""
    rows, fresh = _read(db, ("targetologists", None))
    return _answer({"targetologists": [r["targetologist"] for r in rows]}, fresh)


@router.post("/api/admin/diagnostics", response_model=models.Diagnostics, dependencies=_allow())
def diagnostics(db: Db) -> Response:
    """The integration diagnostics as the checks last stored them (admin tokens only), in the
    old backend's shape."""
    stored, fresh = _read(db, ("diagnostics", None), admin=True)
    result = checks.report([checks.Diagnostic(r["name"], r["status"], r["message"], r["details"])
                            for r in stored])  # fmt: skip
    data = {**result["data"], "checked_at": max((r["checked_at"] for r in stored), default=None)}
    return _answer(data, fresh)


@router.get("/api/admin/diagnostics", dependencies=_allow(),
            responses={503: {"model": models.Health}})  # fmt: skip
def health_check(request: Request) -> JSONResponse:
    """Health for monitors, no token needed: the probe of `make health` (daemon heartbeats,
    stuck runs, stale sources); 200 healthy, 503 unhealthy with one line per problem."""
    state = request.app.state
    report = probe(state.instance, state.settings.reader_url)
    body = models.Health(status="healthy" if report.healthy else "unhealthy", service=SERVICE,
                         timestamp=report.checked_at, problems=report.problems)  # fmt: skip
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if report.healthy else 503)


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send the header `Authorization: Bearer <token>`")
    return token.strip()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _allowed(scope: Scope, who: str | None) -> None:
    """Row-level security hid another targetologist's rows from this token already; this only
    turns asking for them into a clear 403 instead of an empty answer."""
    if scope.is_admin or who is None or who == scope.targetologist:
        return
    raise HTTPException(403, detail=f"this token may read targetologist {scope.targetologist!r} "
                                    "only")  # fmt: skip


def _admin_only(scope: Scope) -> None:
    if not scope.is_admin:
        raise HTTPException(403, detail="admin tokens only")


def _split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(totals, per day) from a query's GROUPING SETS: the totals are the rows without a day."""
    totals = [{k: v for k, v in r.items() if k != "day"} for r in rows if r["day"] is None]
    return totals, [r for r in rows if r["day"] is not None]


async def _unless_unauthorized(request: Request, refusal: Response) -> Response:
    """A bad parameter is answered only to a caller its token admits: 401 comes before 422, as
    if the token were checked first. Checked here, on the error path alone, so that a good
    request keeps its one round trip (the token travels with its queries, `_read`)."""
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    if endpoint is None or not _takes_token(endpoint):
        return refusal  # a path without a token (health, the dashboard's pages)
    try:
        token = _bearer(request.headers.get("authorization"))
    except HTTPException as unauthorized:
        return await http_exception_handler(request, unauthorized)
    if await run_in_threadpool(request.app.state.reader.scope, token) is None:
        unknown = _unauthorized("token not accepted: unknown, expired or revoked")
        return await http_exception_handler(request, unknown)
    return refusal


@cache
def _takes_token(endpoint: Callable[..., Any]) -> bool:
    """Whether the endpoint takes a `Db` (a token), read from its signature as FastAPI reads it."""
    return Bearer in get_type_hints(endpoint).values()


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        refusal = JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)
        return await _unless_unauthorized(request, refusal)

    @app.exception_handler(params.Refused)
    async def refused(request: Request, exc: params.Refused) -> Response:
        return await _unless_unauthorized(request, await http_exception_handler(request, exc))

    @app.exception_handler(ConfigError)
    async def misconfigured(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, 503)  # e.g. a wrong REPORTING_TZ

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(DBAPIError)
    async def warehouse_down(_: Request, exc: Exception) -> JSONResponse:
        # the message of a failed connection may name hosts and users: say what, not where
        return JSONResponse(
            {"detail": "the warehouse is unreachable or too slow right now; try again"}, 503
        )

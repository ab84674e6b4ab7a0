"""An AmoCRM REST API v4 simulator over a live `World` (reads only, plus OAuth 2).

`AmoCrmSimulator(world, ...)` holds the integration's OAuth state and request budget; its `app`
(Starlette) serves `GET /api/v4/leads`, `/api/v4/leads/pipelines`, `/api/v4/leads/custom_fields`
(page/limit up to 50), `/api/v4/events`, `/api/v4/account` and `POST /oauth2/access_token` the
way `shared/apis/amocrm.md` describes: HAL JSON with absolute `_links`, page-number
pagination, HTTP 204 with an empty body when nothing matches, `custom_fields_values` null or UTM
`tracking_data` fields plus the numeric "Сумма оплаты" (as a string), deleted leads visible only
as `lead_deleted` events, rotating single-use refresh tokens (spent the moment a grant is answered,
with no grace period, as AmoCRM's are; older access tokens work until they expire), and the 7
requests/s limit whose repeated 429s get the integration blocked (403).

The world is read on every request, so leads updated between two page requests shift the
pages as they do in AmoCRM. Leads and events are kept sorted in an index rebuilt only when the
world's leads or events changed, so a page of a time window costs the same at a million leads
as at a thousand (a bisection and a slice, not a sort per request). Mutate the world between
requests or from the `after_request` hook, which runs in the server's thread, never while a
request is being served.

Limits, as simulated: a request to `/api/v4` counts if it is admitted; more than
`rate_limit_per_second` admitted requests within any 1 s window are refused with 429 (refused
requests do not count); `block_after_429s` 429s within 60 s block every route with nginx's 403
page for `block_seconds`. 429 bodies alternate between AmoCRM's JSON (with `Retry-After: 1`) and
nginx's HTML page (without it). Not simulated: writes, single-entity routes, `with=only_deleted`
(deleted leads are popped from the world), refresh-token expiry after 3 months, the 50 requests/s
account limit, long-lived tokens.
"""

from __future__ import annotations

import bisect
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import names
from sandbox.world import (
    EXPRESS_PIPELINE,
    FLAGSHIP_PIPELINE,
    LOST,
    PIPELINE_STAGES,
    WON,
    Leads,
    World,
)

HAL_JSON = "application/hal+json"
PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"
MAX_LEADS_LIMIT, DEFAULT_LEADS_LIMIT = 250, 50
MAX_EVENTS_LIMIT, DEFAULT_EVENTS_LIMIT = 100, 100
MAX_FIELDS_LIMIT, DEFAULT_FIELDS_LIMIT = 50, 50
BLOCK_WINDOW_SECONDS = 60.0
MIN_UNIX, MAX_UNIX = 0, 253_402_300_000  # what a filter bound is clamped to (year 9999)
OAUTH_PROBLEM_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
OAUTH_DETAIL = "В запросе отсутствует ряд параметров или параметры невалидны"

# ----------------------------------------------------------------------------------------------
# The vendor's bodies, byte for byte where they are known, for tests to inject as faults.

BODY_401 = {
    "title": "Unauthorized",
    "type": "https://httpstatus.es/401",
    "status": 401,
    "detail": "Неверный логин или пароль",
}
BODY_402 = {
    "title": "Payment Required",
    "type": "https://httpstatus.es/402",
    "status": 402,
    "detail": "Payment required",
}
BODY_429 = {
    "title": "Too Many Requests",
    "type": "https://httpstatus.es/429",
    "status": 429,
    "detail": "Too many requests",
}


def _nginx_page(status_line: str) -> str:
    return (
        f"<html>\r\n<head><title>{status_line}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status_line}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


HTML_403 = _nginx_page("403 Forbidden")
HTML_429 = _nginx_page("429 Too Many Requests")
HTML_504 = _nginx_page("504 Gateway Time-out")


def oauth_problem(status: int, hint: str) -> dict[str, Any]:
    """The body of an `/oauth2/access_token` refusal (league/oauth2-server's hints)."""
    return {
        "hint": hint,
        "title": "Некорректный запрос",
        "type": OAUTH_PROBLEM_TYPE,
        "status": status,
        "detail": OAUTH_DETAIL,
    }


BODY_TOKEN_REVOKED = oauth_problem(401, "Token has been revoked")

# ----------------------------------------------------------------------------------------------
# The account's configuration: pipelines, statuses, custom fields, users.


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    unsorted_status: int
    stages: tuple[tuple[int, str], ...]  # the open stages, in order


def _stages(pipeline: int, *labels: str) -> tuple[tuple[int, str], ...]:
    return tuple(zip(PIPELINE_STAGES[pipeline], labels, strict=True))


_OLD, _TEST = names.OTHER_PIPELINES
PIPELINES = (
    Pipeline(
        EXPRESS_PIPELINE,
        "Express",
        61_000,
        _stages(EXPRESS_PIPELINE, "Новая заявка", "Связались", "Счёт выставлен"),
    ),
    Pipeline(
        FLAGSHIP_PIPELINE,
        "Flagship",
        62_000,
        _stages(FLAGSHIP_PIPELINE, "Новая заявка", "Консультация", "Договор", "Ожидает оплату"),
    ),
    # Where a misconfigured webhook writes sales; no lead of the world lives in them.
    Pipeline(_OLD, "Старая воронка", 63_000, ((63_001, "Первичный контакт"), (63_002, "Думает"))),
    Pipeline(_TEST, "Тест", 64_000, ((64_001, "Первичный контакт"), (64_002, "Переговоры"))),
)
# An open stage names its pipeline; won/lost do not, so a status event takes it from the stage
# the lead left (the world never moves a lead out of 142/143).
_PIPELINE_OF_STAGE = {sid: p.id for p in PIPELINES for sid, _ in p.stages}

UTM_FIELD_IDS = {
    "utm_source": 1001,
    "utm_medium": 1003,
    "utm_campaign": 1004,
    "utm_content": 1005,
    "utm_term": 1006,
}
_UTM_FIELD_HEADS = {  # the constant part of each UTM field, built once
    name: {"field_id": field_id, "field_name": name, "field_code": name.upper()}
    for name, field_id in UTM_FIELD_IDS.items()
}
PAYMENT_FIELD_ID, PAYMENT_FIELD_NAME = 1002, "Сумма оплаты"


@dataclass(frozen=True)
class FieldDefinition:
    id: int
    name: str
    code: str | None
    type: str
    enums: tuple[str, ...] = ()


# The account's lead custom fields, as `/api/v4/leads/custom_fields` lists them: the UTM tracking
# fields the leads carry, the payment amount, and two a school keeps that no lead here fills.
LEAD_FIELDS = (
    *(FieldDefinition(fid, name, name.upper(), "tracking_data")
      for name, fid in UTM_FIELD_IDS.items()),
    FieldDefinition(PAYMENT_FIELD_ID, PAYMENT_FIELD_NAME, None, "numeric"),
    FieldDefinition(1007, "Город", None, "text"),
    FieldDefinition(1008, "Формат обучения", None, "select", ("Онлайн", "Офлайн")),
)  # fmt: skip
USERS = (8_100_001, 8_100_002, 8_100_003)  # responsible managers, assigned by lead id
CONTACT_ID_OFFSET = 20_000_000  # a lead's main contact id = lead id + this


def contact_id(lead_id: int) -> int:
    return lead_id + CONTACT_ID_OFFSET


# ----------------------------------------------------------------------------------------------
# Answers


class _Refusal(Exception):
    """Raised while serving a request to answer with `response` instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json(
    body: Any, status: int = 200, media: str = HAL_JSON, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media)


def _html(status: int, page: str) -> Response:
    return Response(page, status, media_type=HTML)


def _invalid(path: str, code: str, detail: str) -> _Refusal:
    body = {
        "validation-errors": [
            {"request_id": "0", "errors": [{"code": code, "path": path, "detail": detail}]}
        ],
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
    }
    return _Refusal(_json(body, 400, PROBLEM_JSON))


def _int_param(params: QueryParams, name: str) -> int | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _invalid(name, "InvalidType", "This value should be of type int.") from None


def _paging(params: QueryParams, default_limit: int, max_limit: int) -> tuple[int, int]:
    page = _int_param(params, "page")
    page = 1 if page is None else page
    limit = _int_param(params, "limit")
    limit = default_limit if limit is None else limit
    if page < 1:
        raise _invalid("page", "InvalidPage", "This value should be greater than 0.")
    if not 1 <= limit <= max_limit:
        raise _invalid("limit", "InvalidLimit", f"Limit must be between 1 and {max_limit}.")
    return page, limit


def _list_param(params: QueryParams, name: str) -> list[str]:
    """`name[]=a&name[]=b`, `name[0]=a`, or `name=a,b`: every value, in order."""
    pattern = re.compile(re.escape(name) + r"(\[\d*\])?")
    return [
        item.strip()
        for key, value in params.multi_items()
        if pattern.fullmatch(key)
        for item in value.split(",")
        if item.strip()
    ]


def _int_list(params: QueryParams, name: str) -> set[int]:
    try:
        return {int(v) for v in _list_param(params, name)}
    except ValueError:
        raise _invalid(name, "InvalidType", "This value should be of type int.") from None


def _window(params: QueryParams, name: str) -> tuple[datetime, datetime] | None:
    """Inclusive `[from]`/`[to]` unix seconds as a half-open datetime range `[low, high)`, so a
    time with a fraction matches exactly when its rendered (truncated) second does; comparing
    datetimes, not timestamps, keeps a scan of 10k leads at a millisecond."""
    low = _int_param(params, f"{name}[from]")
    high = _int_param(params, f"{name}[to]")
    if low is None and high is None and params.get(name):
        # The short form: `filter[created_at]=from` or `=from,to`.
        parts = [p.strip() for p in params[name].split(",")]
        try:
            low, high = int(parts[0]), int(parts[1]) if len(parts) > 1 else None
        except ValueError:
            raise _invalid(name, "InvalidType", "This value should be of type int.") from None
    if low is None and high is None:
        return None
    return _from_unix(MIN_UNIX if low is None else low), _from_unix(
        MAX_UNIX if high is None else high + 1
    )


def _from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(min(max(seconds, MIN_UNIX), MAX_UNIX), UTC)


def _links(request: Request, page: int, limit: int, has_next: bool) -> dict[str, Any]:
    base = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "limit")]

    def href(to_page: int) -> dict[str, str]:
        return {"href": f"{base}?{urlencode([*kept, ('page', to_page), ('limit', limit)])}"}

    links = {"self": href(page)}
    if has_next:
        links["next"] = href(page + 1)
    if page > 1:
        links["first"] = href(1)
        links["prev"] = href(page - 1)
    return links


@dataclass(frozen=True)
class _Span:
    """Rows `[low, high)` of a list sorted ascending, served in that order or reversed."""

    rows: list[dict[str, Any]]
    low: int
    high: int
    descending: bool = False

    def page(self, page: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The page's rows and whether another page follows, in time independent of len(rows)."""
        skip = (page - 1) * limit
        if self.descending:
            end = self.high - skip
            chunk = self.rows[max(self.low, end - limit) : max(self.low, end)][::-1]
        else:
            start = self.low + skip
            chunk = self.rows[start : min(self.high, start + limit)]
        return chunk, self.high - self.low > skip + limit


def _within(
    rows: list[dict[str, Any]], field: str, window: tuple[datetime, datetime] | None
) -> tuple[int, int]:
    """The positions of `low <= row[field] < high` in rows sorted by field."""
    if window is None:
        return 0, len(rows)
    low, high = window
    by_field = itemgetter(field)
    return bisect.bisect_left(rows, low, key=by_field), bisect.bisect_left(rows, high, key=by_field)


class _SortedLeads:
    """The world's leads sorted by (field, id) for each order field, rebuilt when `version`
    says they changed (AmoCRM's order: `order[field]` with id breaking ties)."""

    def __init__(self, leads: Leads) -> None:
        self._leads = leads
        self._version = -1
        self._by: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def by(self, field: str) -> list[dict[str, Any]]:
        with self._lock:
            if self._version != self._leads.version:
                self._by, self._version = {}, self._leads.version
            if field not in self._by:
                rows = sorted(self._leads.values(), key=itemgetter("id"))
                if field != "id":
                    rows.sort(key=itemgetter(field))  # stable: ties stay in id order
                self._by[field] = rows
            return self._by[field]


class _SortedEvents:
    """The world's events of some types sorted by (created_at, id), rebuilt when more events
    were appended (the world only appends them)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self._count = -1
        self._of: dict[frozenset[str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def of(self, types: frozenset[str]) -> list[dict[str, Any]]:
        with self._lock:
            if self._count != len(self._events):
                self._of, self._count = {}, len(self._events)
            if types not in self._of:
                rows = [e for e in self._events if not types or e["type"] in types]
                rows.sort(key=itemgetter("id"))
                rows.sort(key=itemgetter("created_at"))  # stable: ties stay in id order
                self._of[types] = rows
            return self._of[types]


def _page_or_204(
    request: Request,
    key: str,
    span: _Span,
    page: int,
    limit: int,
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    chunk, has_next = span.page(page, limit)
    if not chunk:
        return Response(status_code=204)
    body = {
        "_page": page,
        "_links": _links(request, page, limit, has_next=has_next),
        "_embedded": {key: [render(row) for row in chunk]},
    }
    return _json(body)


# ----------------------------------------------------------------------------------------------
# The request budget


class RateLimiter:
    """The integration's budget: a sliding 1 s window of admitted requests, and the block that
    follows too many 429s. Runs in the server's event loop only, so needs no lock."""

    def __init__(self, per_second: float, block_after_429s: int, block_seconds: float) -> None:
        self.per_second = per_second
        self.block_after_429s = block_after_429s
        self.block_seconds = block_seconds
        self.admitted: deque[float] = deque()
        self.refused: deque[float] = deque()
        self.blocked_until = float("-inf")
        self.count_429 = 0

    @property
    def blocked(self) -> bool:
        return time.monotonic() < self.blocked_until

    def admit(self) -> Response | None:
        """None if the request may go on, else the 429 answer."""
        now = time.monotonic()
        while self.admitted and self.admitted[0] <= now - 1.0:
            self.admitted.popleft()
        if len(self.admitted) + 1 <= self.per_second:
            self.admitted.append(now)
            return None
        self.count_429 += 1
        self.refused.append(now)
        while self.refused[0] <= now - BLOCK_WINDOW_SECONDS:
            self.refused.popleft()
        if len(self.refused) >= self.block_after_429s:
            self.blocked_until = now + self.block_seconds
            # The block outlasts any window; start afresh when it lifts.
            self.admitted.clear()
            self.refused.clear()
        if self.count_429 % 2:
            return _json(BODY_429, 429, PROBLEM_JSON, {"Retry-After": "1"})
        return _html(429, HTML_429)


# ----------------------------------------------------------------------------------------------
# The service


class AmoCrmSimulator:
    def __init__(
        self,
        world: World,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        access_token: str,
        refresh_token: str,
        account_id: int = 5135160,
        subdomain: str = "sandbox",
        timezone: str = "Asia/Almaty",
        access_ttl_seconds: int = 86400,
        rate_limit_per_second: float = 7.0,
        block_after_429s: int = 20,
        block_seconds: float = 60.0,
    ) -> None:
        self.world = world
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.account_id = account_id
        self.subdomain = subdomain
        self.timezone = timezone
        self.access_ttl_seconds = access_ttl_seconds
        self.limiter = RateLimiter(rate_limit_per_second, block_after_429s, block_seconds)
        # Called with the path after every /api/v4 answer is built, before it is sent.
        self.after_request: Callable[[str], None] | None = None
        # Called once a refresh_token grant has rotated the pair, before its answer is sent:
        # the moment a client's crash loses the pair (the old refresh token is already spent).
        self.after_rotation: Callable[[], None] | None = None
        self.refresh_count = 0  # successful refresh_token grants
        self._lock = threading.Lock()  # tests touch tokens from their own thread
        self._access: dict[str, float] = {access_token: time.time() + access_ttl_seconds}
        self._refresh = refresh_token
        self._revoked_refresh: set[str] = set()
        self._codes: set[str] = set()
        self._used_codes: set[str] = set()
        self._sorted_leads = _SortedLeads(world.amocrm_leads)
        self._sorted_events = _SortedEvents(world.amocrm_events)
        self.app = Starlette(
            routes=[
                Route("/api/v4/leads", self._api(self._leads)),
                Route("/api/v4/leads/pipelines", self._api(self._pipelines)),
                Route("/api/v4/leads/custom_fields", self._api(self._custom_fields)),
                Route("/api/v4/events", self._api(self._events)),
                Route("/api/v4/account", self._api(self._account)),
                Route("/oauth2/access_token", self._token, methods=["POST"]),
            ]
        )
        self.app.state.simulator = self

    # ---- OAuth state, for tests ----------------------------------------------------------------

    @property
    def refresh_token(self) -> str:
        """The one refresh token that works now."""
        return self._refresh

    def issue_authorization_code(self) -> str:
        """A one-time code for the `authorization_code` grant, as the install redirect gives."""
        # shaped as AmoCRM's own (hex after "def50200"): a url-safe random code could begin with
        # "-", which the authorize command's argument parser takes for an option
        code = "def50200" + secrets.token_hex(32)
        with self._lock:
            self._codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401."""
        with self._lock:
            self._access = dict.fromkeys(self._access, 0.0)

    def _issue_pair(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            # Older access tokens keep working until they expire, as in AmoCRM; the refresh
            # token is one per integration, so a new pair (by either grant) revokes the last.
            self._access[access] = time.time() + self.access_ttl_seconds
            self._revoked_refresh.add(self._refresh)
            self._refresh = refresh
        return {
            "token_type": "Bearer",
            "expires_in": self.access_ttl_seconds,
            "access_token": access,
            "refresh_token": refresh,
        }

    # ---- /oauth2/access_token ------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        if self.limiter.blocked:
            return _html(403, HTML_403)
        form = await _token_form(request)
        try:
            return _json(self._grant(form), media="application/json")
        except _Refusal as refusal:
            return refusal.response

    def _grant(self, form: dict[str, Any]) -> dict[str, Any]:
        client = (form.get("client_id"), form.get("client_secret"), form.get("redirect_uri"))
        if client != (self.client_id, self.client_secret, self.redirect_uri):
            raise _oauth_refusal(400, "Client authentication failed")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            self._spend_code(str(form.get("code") or ""))
        elif grant == "refresh_token":
            self._spend_refresh(str(form.get("refresh_token") or ""))
        else:
            raise _oauth_refusal(400, "Unsupported grant type")
        pair = self._issue_pair()
        if grant == "refresh_token" and self.after_rotation is not None:
            self.after_rotation()
        return pair

    def _spend_code(self, code: str) -> None:
        with self._lock:
            if code in self._codes:
                self._codes.discard(code)
                self._used_codes.add(code)
                return
            used = code in self._used_codes
        hint = (
            "Authorization code has been revoked"
            if used
            else "Cannot decrypt the authorization code"
        )
        raise _oauth_refusal(400, hint)

    def _spend_refresh(self, token: str) -> None:
        with self._lock:
            if token and token == self._refresh:
                self.refresh_count += 1
                return
            revoked = token in self._revoked_refresh
        if revoked:
            raise _Refusal(_json(BODY_TOKEN_REVOKED, 401, PROBLEM_JSON))
        raise _oauth_refusal(401, "Cannot decrypt the refresh token")

    # ---- /api/v4 -------------------------------------------------------------------------------

    def _api(
        self, render: Callable[[Request], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                response = self._serve(request, render)
            except _Refusal as refusal:
                response = refusal.response
            if self.after_request is not None:
                self.after_request(request.url.path)
            return response

        return endpoint

    def _serve(self, request: Request, render: Callable[[Request], Response]) -> Response:
        if self.limiter.blocked:
            return _html(403, HTML_403)
        too_many = self.limiter.admit()
        if too_many is not None:
            return too_many
        self._authorize(request.headers.get("authorization", ""))
        return render(request)

    def _authorize(self, header: str) -> None:
        scheme, _, token = header.strip().partition(" ")
        with self._lock:
            expires = self._access.get(token.strip(), 0.0)
        if scheme.lower() != "bearer" or expires <= time.time():
            raise _Refusal(_json(BODY_401, 401, PROBLEM_JSON))

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # ---- leads ---------------------------------------------------------------------------------

    def _leads(self, request: Request) -> Response:
        params = request.query_params
        page, limit = _paging(params, DEFAULT_LEADS_LIMIT, MAX_LEADS_LIMIT)
        span = self._filtered_leads(params)
        base = self._base(request)
        contacts = "contacts" in _list_param(params, "with")
        return _page_or_204(
            request, "leads", span, page, limit, lambda lead: self._lead(lead, base, contacts)
        )

    def _filtered_leads(self, params: QueryParams) -> _Span:
        """The order field's window by bisection in the index; any other filter reads the
        window's rows (what the loader asks, a window of the order field, reads none)."""
        field, descending = _lead_order(params)
        rows = self._sorted_leads.by(field)
        windows = {f: _window(params, f"filter[{f}]") for f in ("created_at", "updated_at")}
        low, high = _within(rows, field, windows.pop(field, None))
        pipelines = _int_list(params, "filter[pipeline_id]")
        statuses = _status_pairs(params)
        others = {f: w for f, w in windows.items() if w is not None}
        if not (others or pipelines or statuses):
            return _Span(rows, low, high, descending)
        kept = [
            r
            for r in rows[low:high]
            if all(w[0] <= r[f] < w[1] for f, w in others.items())
            and (not pipelines or r["pipeline_id"] in pipelines)
            and (not statuses or (r["pipeline_id"], r["status_id"]) in statuses)
        ]
        return _Span(kept, 0, len(kept), descending)

    def _lead(self, lead: dict[str, Any], base: str, contacts: bool) -> dict[str, Any]:
        lead_id, closed = lead["id"], lead["closed_at"]
        embedded: dict[str, Any] = {"tags": [], "companies": []}
        if contacts:
            embedded["contacts"] = [{"id": contact_id(lead_id), "is_main": True}]
        return {
            "id": lead_id,
            "name": lead["name"],
            "price": lead["price"],
            "responsible_user_id": USERS[lead_id % len(USERS)],
            "group_id": 0,
            "status_id": lead["status_id"],
            "pipeline_id": lead["pipeline_id"],
            "loss_reason_id": None,
            "created_by": 0,
            "updated_by": 0,
            "created_at": int(lead["created_at"].timestamp()),
            "updated_at": int(lead["updated_at"].timestamp()),
            "closed_at": None if closed is None else int(closed.timestamp()),
            "closest_task_at": None,
            "is_deleted": lead["is_deleted"],
            "custom_fields_values": _custom_fields(lead),
            "score": None,
            "account_id": self.account_id,
            "labor_cost": None,
            "_links": {"self": {"href": f"{base}/api/v4/leads/{lead_id}"}},
            "_embedded": embedded,
        }

    # ---- pipelines -----------------------------------------------------------------------------

    def _pipelines(self, request: Request) -> Response:
        base = self._base(request)
        body = {
            "_total_items": len(PIPELINES),
            "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines"}},
            "_embedded": {
                "pipelines": [self._pipeline(p, i, base) for i, p in enumerate(PIPELINES, 1)]
            },
        }
        return _json(body)

    def _pipeline(self, pipeline: Pipeline, sort: int, base: str) -> dict[str, Any]:
        href = f"{base}/api/v4/leads/pipelines/{pipeline.id}"
        statuses = [
            (pipeline.unsorted_status, "Неразобранное", 10, "#c1c1c1", 1),
            *(
                (sid, name, 20 + 10 * i, "#99ccff", 0)
                for i, (sid, name) in enumerate(pipeline.stages)
            ),
            (WON, "Успешно реализовано", 10000, "#CCFF66", 0),
            (LOST, "Закрыто и не реализовано", 11000, "#D5D8DB", 0),
        ]
        return {
            "id": pipeline.id,
            "name": pipeline.name,
            "sort": sort,
            "is_main": pipeline.id == EXPRESS_PIPELINE,
            "is_unsorted_on": True,
            "is_archive": False,
            "account_id": self.account_id,
            "_links": {"self": {"href": href}},
            "_embedded": {
                "statuses": [
                    {
                        "id": sid,
                        "name": name,
                        "sort": order,
                        "is_editable": sid not in (WON, LOST),
                        "pipeline_id": pipeline.id,
                        "color": color,
                        "type": kind,
                        "account_id": self.account_id,
                        "_links": {"self": {"href": f"{href}/statuses/{sid}"}},
                    }
                    for sid, name, order, color, kind in statuses
                ]
            },
        }

    # ---- custom fields -------------------------------------------------------------------------

    def _custom_fields(self, request: Request) -> Response:
        page, limit = _paging(request.query_params, DEFAULT_FIELDS_LIMIT, MAX_FIELDS_LIMIT)
        base = self._base(request)
        rows = [self._field(field, base) for field in LEAD_FIELDS]
        span = _Span(rows, 0, len(rows))
        return _page_or_204(request, "custom_fields", span, page, limit, lambda row: row)

    def _field(self, field: FieldDefinition, base: str) -> dict[str, Any]:
        return {
            "id": field.id,
            "name": field.name,
            "type": field.type,
            "account_id": self.account_id,
            "code": field.code,
            "sort": 500 + field.id,
            "is_api_only": field.type == "tracking_data",
            "enums": [
                {"id": field.id * 10 + i, "value": value, "sort": i}
                for i, value in enumerate(field.enums, 1)
            ]
            or None,
            "group_id": None,
            "required_statuses": [],
            "is_deletable": field.type != "tracking_data",
            "is_predefined": field.type == "tracking_data",
            "entity_type": "leads",
            "remind": None,
            "_links": {"self": {"href": f"{base}/api/v4/leads/custom_fields/{field.id}"}},
        }

    # ---- events --------------------------------------------------------------------------------

    def _events(self, request: Request) -> Response:
        params = request.query_params
        page, limit = _paging(params, DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)
        types = set(_list_param(params, "filter[type]"))
        entities = set(_list_param(params, "filter[entity]"))
        rows = self._sorted_events.of(frozenset(types))
        low, high = _within(rows, "created_at", _window(params, "filter[created_at]"))
        if entities and "lead" not in entities:
            low = high  # the world's events are all about leads
        base = self._base(request)
        return _page_or_204(
            request, "events", _Span(rows, low, high), page, limit, lambda e: self._event(e, base)
        )

    def _event(self, event: dict[str, Any], base: str) -> dict[str, Any]:
        lead_id = event["entity_id"]
        before, after = event["value_before"], event["value_after"]
        pipeline = _PIPELINE_OF_STAGE.get(before, _PIPELINE_OF_STAGE.get(after))
        return {
            "id": event["id"],
            "type": event["type"],
            "entity_id": lead_id,
            "entity_type": "lead",
            "created_by": 0,
            "created_at": int(event["created_at"].timestamp()),
            "value_after": _status_value(after, pipeline),
            "value_before": _status_value(before, pipeline),
            "account_id": self.account_id,
            "_links": {"self": {"href": f"{base}/api/v4/events/{event['id']}"}},
            "_embedded": {
                "entity": {
                    "id": lead_id,
                    "_links": {"self": {"href": f"{base}/api/v4/leads/{lead_id}"}},
                }
            },
        }

    # ---- account -------------------------------------------------------------------------------

    def _account(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "id": self.account_id,
            "name": "Sandbox School",
            "subdomain": self.subdomain,
            "created_at": 1_600_000_000,
            "created_by": USERS[0],
            "updated_at": 1_700_000_000,
            "updated_by": USERS[0],
            "current_user_id": USERS[0],
            "country": "KZ",
            "currency": "KZT",
            "currency_symbol": "₸",
            "customers_mode": "disabled",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": False,
            "contact_name_display_order": 1,
            "_links": {"self": {"href": f"{self._base(request)}/api/v4/account"}},
        }
        if "datetime_settings" in _list_param(request.query_params, "with"):
            body["_embedded"] = {"datetime_settings": self._datetime_settings()}
        return _json(body)

    def _datetime_settings(self) -> dict[str, str]:
        offset = datetime.now(ZoneInfo(self.timezone)).strftime("%z")
        return {
            "date_pattern": "d.m.Y H:i",
            "short_date_pattern": "d.m.Y",
            "short_time_pattern": "H:i",
            "date_format": "d.m.Y",
            "time_format": "H:i:s",
            "timezone": self.timezone,
            "timezone_offset": f"{offset[:3]}:{offset[3:]}",
        }


def _oauth_refusal(status: int, hint: str) -> _Refusal:
    return _Refusal(_json(oauth_problem(status, hint), status, PROBLEM_JSON))


async def _token_form(request: Request) -> dict[str, Any]:
    """The grant's fields from a JSON body (as documented) or a form (as AmoCRM also takes)."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode()))
    try:
        form = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return form if isinstance(form, dict) else {}


def _lead_order(params: QueryParams) -> tuple[str, bool]:
    """The first `order[field]=asc|desc` as (field, descending); by id ascending without one."""
    for key, value in params.multi_items():
        match = re.fullmatch(r"order\[(\w+)\]", key)
        if match is None:
            continue
        if match[1] not in ("id", "created_at", "updated_at") or value not in ("asc", "desc"):
            raise _invalid(
                key, "NotSupportedChoice", "The value you selected is not a valid choice."
            )
        return match[1], value == "desc"
    return "id", False


def _status_pairs(params: QueryParams) -> set[tuple[int, int]]:
    """`filter[statuses][N][pipeline_id]` + `[status_id]` as (pipeline, status) pairs."""
    parts: dict[str, dict[str, str]] = {}
    for key, value in params.multi_items():
        match = re.fullmatch(r"filter\[statuses\]\[(\d+)\]\[(pipeline_id|status_id)\]", key)
        if match:
            parts.setdefault(match[1], {})[match[2]] = value
    try:
        return {(int(p["pipeline_id"]), int(p["status_id"])) for p in parts.values()}
    except (KeyError, ValueError):
        raise _invalid(
            "filter[statuses]", "InvalidType", "pipeline_id and status_id are required."
        ) from None


def _custom_fields(lead: dict[str, Any]) -> list[dict[str, Any]] | None:
    fields = [
        {**_UTM_FIELD_HEADS[name], "field_type": "tracking_data", "values": [{"value": value}]}
        for name, value in lead["utm"].items()
        if value is not None
    ]
    if lead["status_id"] == WON:
        fields.append(
            {
                "field_id": PAYMENT_FIELD_ID,
                "field_name": PAYMENT_FIELD_NAME,
                "field_code": None,
                "field_type": "numeric",
                "values": [{"value": str(lead["price"])}],
            }
        )
    return fields or None


def _status_value(status: int | None, pipeline: int | None) -> list[dict[str, Any]]:
    """AmoCRM's `value_before`/`value_after`: a status move names both ends; a deletion has
    neither (an empty list)."""
    if status is None:
        return []
    return [{"lead_status": {"id": status, "pipeline_id": pipeline}}]

"""A Graph API (Marketing API) simulator over a live `World`: Facebook as it would answer now.

`FacebookSimulator(world, app_id=..., app_secret=..., access_token=...)` serves, under
`/{api_version}/`:

- `GET /act_{id}` (account fields) and its `campaigns`, `adsets`, `ads` edges: `fields`,
  `filtering` on `updated_time`, `limit`, cursor paging with an absolute `next` link;
- `GET /act_{id}/insights`: `level`, `fields`, `time_range` / `date_preset`, `time_increment`,
  one row per object and period with impressions, every metric a string, `actions` with the
  overlapping lead types the real API returns; `POST` the same to start an async report run,
  `GET /{report_run_id}` to poll it (one step per poll; percent reaches 100 one poll *before*
  "Job Completed", as Graph's can) and `GET /{report_run_id}/insights` for its pages;
- `GET /debug_token` (or POST with `method=GET`, its parameters in the form body; the app
  token as `access_token` or in the Authorization header).

Graph's failure modes: token errors 190 (and 190/463 once expired), 100/33 for unknown objects,
3018 for a start date beyond 37 months, the HTTP 500 "reduce the amount of data" above a cell
budget, failed report runs, and per-account throttling (80004 for insights, 17/2446079 otherwise)
driven by a rolling hour of weighted calls. Every response, errors included, carries
`x-app-usage`, and the account's usage headers whenever its path names a known account or report
run. `graph_error` and `GRAPH_ERRORS` give the same bodies for `SimServer` fault injection.

Usage: each call costs budget units (object reads and report polls 1, a sync insights page 3,
starting a report run 5); an account's percentage is its units in the last hour over
`calls_per_hour_budget`, and at 100% its calls are refused until enough units age out. The app's
percentage pools all accounts' budgets. `limit` defaults to 25 and is capped at 500.

Time is the world's: "today" is `world.now` in the account's time zone, the usage window and the
token's expiry follow `world.now`, so a throttled account frees up as the world advances.
Not simulated: breakdowns, attribution windows, reach and other metrics, writes, batch requests,
app-level throttling (only reported in `x-app-usage`), `before` cursors.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import itertools
import math
import operator
import re
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.world import START, World

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
DEFAULT_LIMIT = 25
MAX_LIMIT = 500  # a larger `limit` is quietly capped
INSIGHTS_HISTORY_MONTHS = 37
USAGE_WINDOW = timedelta(hours=1)
LONG_LIVED_TOKEN = timedelta(days=60)
# Budget units per call: insights work weighs more than reading objects, async jobs the most.
WEIGHT_READ, WEIGHT_INSIGHTS, WEIGHT_ASYNC_JOB = 1, 3, 5
LEAD_ACTION_TYPES = ("lead", "onsite_conversion.lead_grouped", "offsite_conversion.fb_pixel_lead")
GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # 2026-09-01T00:00:00+0000
MENLO_PARK = ZoneInfo("America/Los_Angeles")  # Graph words token expiry in its own time zone
REPORT_RUN_BASE = 6_023_000_000_000_000

# ---- Graph's words ----------------------------------------------------------------------------

MSG_TOKEN_INVALID = "Invalid OAuth access token - Cannot parse access token"
MSG_APP_TOKEN_INVALID = "Invalid OAuth access token signature."
MSG_INPUT_TOKEN_INVALID = "Invalid OAuth access token."
MSG_TOKEN_EXPIRED = (
    "Error validating access token: Session has expired on {expired}. The current time is {now}."
)
MSG_UNSUPPORTED = (
    "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to "
    "missing permissions, or does not support this operation. Please read the Graph API "
    "documentation at https://developers.facebook.com/docs/graph-api"
)
MSG_UNKNOWN_PATH = "Unknown path components: {path}"
MSG_DEPRECATED_VERSION = (
    "(#2635) You are calling a deprecated version of the Ads API. "
    "Please update to the latest version: {version}."
)
MSG_NONEXISTING_FIELD = "(#100) Tried accessing nonexisting field ({field}) on node type ({node})"
MSG_REDUCE_DATA = "Please reduce the amount of data you're asking for, then retry your request"
MSG_START_TOO_OLD = (
    "(#3018) The start date of the time range cannot be beyond 37 months from the current date"
)
MSG_ACCOUNT_LIMIT = (
    "(#80004) There have been too many calls to this ad-account. Wait a bit and try again. "
    "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
    "rate-limiting."
)
MSG_USER_LIMIT = "(#17) User request limit reached"
MSG_USER_LIMIT_TITLE = "Ad Account Has Too Many API Calls"
MSG_USER_LIMIT_DETAIL = (
    "There have been too many calls from this ad-account. Please wait a bit and try again."
)
MSG_APP_LIMIT = "(#4) Application request limit reached"
MSG_PAGE_LIMIT = "(#32) Page request limit reached"
MSG_API_RATE_LIMIT = "(#613) Calls to this api have exceeded the rate limit."
MSG_PERMISSION = "(#200) Ad account owner has NOT grant ads_management or ads_read permission"
MSG_TRANSIENT = "An unexpected error has occurred. Please retry your request later."
MSG_REPORT_NOT_READY = "Error accessing adreport job."
MSG_REPORT_NOT_READY_TITLE = "Loading Async Ads Report Failed"
MSG_REPORT_NOT_READY_DETAIL = (
    "Sorry, the report cannot be loaded successfully. Please check if your job status is "
    "completed instead of failed or running before fetching the data."
)

_trace_numbers = itertools.count(1)


def _fbtrace_id() -> str:
    digest = hashlib.blake2b(str(next(_trace_numbers)).encode(), digest_size=16).digest()
    return "A" + base64.urlsafe_b64encode(digest).decode()[:22]


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    type: str | None = "OAuthException",  # Graph's own key, as the callers know it
    status: int = 400,
    is_transient: bool | None = None,
    user_title: str | None = None,
    user_msg: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a Graph error, keys in Graph's order; `type=None` leaves it out."""
    error: dict[str, Any] = {"message": message}
    if type is not None:
        error["type"] = type
    error["code"] = code
    optional = {
        "error_subcode": subcode,
        "is_transient": is_transient,
        "error_user_title": user_title,
        "error_user_msg": user_msg,
    }
    error |= {key: value for key, value in optional.items() if value is not None}
    error["fbtrace_id"] = _fbtrace_id()
    return status, {"error": error}


def token_expired_message(expired: datetime, now: datetime) -> str:
    def worded(moment: datetime) -> str:
        local = moment.astimezone(MENLO_PARK)
        return f"{local:%A, %d-%b-%y %H:%M:%S} {local.tzname()}"

    return MSG_TOKEN_EXPIRED.format(expired=worded(expired), now=worded(now))


_KNOWN_ERRORS: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
    "app_limit": lambda: graph_error(4, MSG_APP_LIMIT, is_transient=True),
    "user_limit": lambda: graph_error(
        17,
        MSG_USER_LIMIT,
        subcode=2446079,
        is_transient=True,
        user_title=MSG_USER_LIMIT_TITLE,
        user_msg=MSG_USER_LIMIT_DETAIL,
    ),
    "page_limit": lambda: graph_error(32, MSG_PAGE_LIMIT, is_transient=True),
    "api_rate_limit": lambda: graph_error(
        613, MSG_API_RATE_LIMIT, subcode=1487742, is_transient=True
    ),
    "account_limit": lambda: graph_error(80004, MSG_ACCOUNT_LIMIT, subcode=2446079),
    "token_invalid": lambda: graph_error(190, MSG_TOKEN_INVALID),
    "token_expired": lambda: graph_error(
        190,
        token_expired_message(START + timedelta(days=84), START + timedelta(days=85)),
        subcode=463,
    ),
    "object_missing": lambda: graph_error(
        100,
        MSG_UNSUPPORTED.format(method="get", id="act_0"),
        subcode=33,
        type="GraphMethodException",
    ),
    "permission": lambda: graph_error(200, MSG_PERMISSION, status=403),
    # Graph's load shedder answers with a bare body: no type, no trace id.
    "too_much_data": lambda: (500, {"error": {"code": 1, "message": MSG_REDUCE_DATA}}),
    "transient": lambda: graph_error(2, MSG_TRANSIENT, is_transient=True, status=500),
    "start_too_old": lambda: graph_error(3018, MSG_START_TOO_OLD),
    "report_not_ready": lambda: graph_error(
        2601,
        MSG_REPORT_NOT_READY,
        subcode=1815107,
        is_transient=True,
        user_title=MSG_REPORT_NOT_READY_TITLE,
        user_msg=MSG_REPORT_NOT_READY_DETAIL,
    ),
}
# Ready (status, body) pairs for `server.faults.add(path, status=..., body=...)`.
GRAPH_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    name: make() for name, make in _KNOWN_ERRORS.items()
}


class GraphError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body


def _fail(code: int, message: str, **kwargs: Any) -> NoReturn:
    raise GraphError(*graph_error(code, message, **kwargs))


def _fail_known(name: str) -> NoReturn:
    raise GraphError(*_KNOWN_ERRORS[name]())


def _bad_param(message: str) -> NoReturn:
    _fail(100, f"(#100) {message}")


# ---- usage ------------------------------------------------------------------------------------


def usage_headers(
    *,
    app_pct: float,
    account_id: str | None = None,
    account_pct: float = 0.0,
    regain_minutes: int = 0,
    reset_seconds: int = 0,
    insights: bool = False,
) -> dict[str, str]:
    """Graph's usage headers; also for faults, whose answers skip the simulator."""
    app = round(app_pct)
    headers = {"x-app-usage": _json({"call_count": app, "total_cputime": app, "total_time": app})}
    if account_id is None:
        return headers
    number = account_id.removeprefix("act_")
    pct = round(account_pct)
    use_case = {
        "type": "ads_insights" if insights else "ads_management",
        "call_count": pct,
        "total_cputime": pct,
        "total_time": pct,
        "estimated_time_to_regain_access": regain_minutes,
    }
    headers["x-business-use-case-usage"] = _json({number: [use_case]})
    headers["x-ad-account-usage"] = _json(
        {
            "acc_id_util_pct": round(account_pct, 2),
            "reset_time_duration": reset_seconds,
            "ads_api_access_tier": "standard_access",
        }
    )
    if insights:
        headers["x-fb-ads-insights-throttle"] = _json(
            {"app_id_util_pct": round(app_pct, 2), "acc_id_util_pct": round(account_pct, 2)}
        )
    return headers


@dataclass
class _Usage:
    """Weighted calls in the rolling hour, plus a floor forced by `set_usage` until a moment."""

    calls: deque[tuple[datetime, int]] = field(default_factory=deque)
    forced_pct: float = 0.0
    forced_until: datetime = datetime.min.replace(tzinfo=UTC)

    def record(self, now: datetime, weight: int) -> None:
        while self.calls and self.calls[0][0] <= now - USAGE_WINDOW:
            self.calls.popleft()
        self.calls.append((now, weight))

    def pct(self, at: datetime, budget: int) -> float:
        forced = self.forced_pct if at < self.forced_until else 0.0
        weights = sum(w for when, w in self.calls if at - when < USAGE_WINDOW)
        return forced + weights * 100 / budget

    def _expiries(self, now: datetime) -> list[datetime]:
        ends = [when + USAGE_WINDOW for when, _ in self.calls] + [self.forced_until]
        return sorted(end for end in ends if end > now)

    def regain_minutes(self, now: datetime, budget: int) -> int:
        """Minutes until usage drops below 100%; 0 while it is below."""
        if self.pct(now, budget) < 100:
            return 0
        moment = next(end for end in self._expiries(now) if self.pct(end, budget) < 100)
        return math.ceil((moment - now) / timedelta(minutes=1))

    def reset_seconds(self, now: datetime) -> int:
        ends = self._expiries(now)
        return int((ends[-1] - now).total_seconds()) if ends else 0


# ---- paging -----------------------------------------------------------------------------------

T = TypeVar("T")


def _cursor(offset: int) -> str:
    # Graph's insights cursors: base64 of the offset, "=" padding spelled "ZD" ("MAZDZD" is 0).
    return base64.b64encode(str(offset).encode()).decode().replace("=", "ZD")


def _offset(cursor: str) -> int:
    text = cursor
    while text.endswith("ZD"):
        text = text[:-2]
    try:
        return int(base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode())
    except (binascii.Error, ValueError):
        _bad_param(f"The after cursor '{cursor}' is not valid")


def _limit(params: dict[str, str]) -> int:
    raw = params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or int(raw) < 1:
        _bad_param("param limit must be a positive integer")
    return min(int(raw), MAX_LIMIT)


def _page(
    items: Sequence[T], params: dict[str, str], url: URL, render: Callable[[T], dict[str, Any]]
) -> dict[str, Any]:
    limit = _limit(params)
    start = _offset(params["after"]) + 1 if "after" in params else 0
    chunk = items[start : start + limit]
    if not chunk:
        return {"data": []}
    after = _cursor(start + len(chunk) - 1)
    paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": after}}
    if start + len(chunk) < len(items):
        paging["next"] = str(url.include_query_params(after=after))
    return {"data": [render(item) for item in chunk], "paging": paging}


# ---- request parsing --------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _unix(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(GRAPH_TIME_FORMAT)


async def _request_params(request: Request) -> dict[str, str]:
    """Query parameters, and for a POST its form or JSON body on top (Graph takes all three)."""
    params = dict(request.query_params)
    if request.method != "POST":
        return params
    body = await request.body()
    if "json" not in request.headers.get("content-type", ""):
        return params | dict(parse_qsl(body.decode(), keep_blank_values=True))
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        _bad_param("Request body is not valid JSON")
    if not isinstance(data, dict):
        _bad_param("Request body must be a JSON object")
    return params | {k: v if isinstance(v, str) else _json(v) for k, v in data.items()}


def _token(request: Request, params: dict[str, str]) -> str | None:
    if "access_token" in params:
        return params["access_token"]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() in ("bearer", "oauth") else None


def _method(request: Request, params: dict[str, str]) -> str:
    """The method Graph acts on: a POST's `method` parameter overrides it (so a read can carry
    its parameters, secrets included, in the body instead of the URL)."""
    if request.method == "POST" and "method" in params:
        return params["method"].upper()
    return request.method


def _fields(params: dict[str, str]) -> list[str]:
    return [f.strip() for f in params.get("fields", "").split(",") if f.strip()]


def _pick(values: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The requested fields in the requested order; Graph always adds the id."""
    picked = {name: values[name] for name in fields}
    picked.setdefault("id", values["id"])
    return picked


def _check_fields(fields: list[str], allowed: Sequence[str], node: str) -> None:
    for name in fields:
        if name not in allowed:
            _fail(100, MSG_NONEXISTING_FIELD.format(field=name, node=node))


_COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "GREATER_THAN": operator.gt,
    "LESS_THAN": operator.lt,
}


def _updated_time_test(op: str, bound: datetime) -> Callable[[dict[str, Any]], bool]:
    compare = _COMPARISONS[op]
    return lambda obj: compare(obj["updated_time"], bound)


def _updated_time_filters(raw: str | None) -> list[Callable[[dict[str, Any]], bool]]:
    """`filtering=[{"field": "updated_time", "operator": "GREATER_THAN", "value": UNIX}]`."""
    if raw is None:
        return []
    try:
        specs = [
            (spec["field"], spec["operator"], datetime.fromtimestamp(int(spec["value"]), UTC))
            for spec in orjson.loads(raw)
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
        _bad_param('param filtering must be an array of {"field", "operator", "value"} objects')
    for name, op, _ in specs:
        if name != "updated_time" or op not in _COMPARISONS:
            _bad_param(f"Filtering on {name} with {op} is not supported")
    return [_updated_time_test(op, bound) for _, op, bound in specs]


# ---- objects ----------------------------------------------------------------------------------

ACCOUNT_FIELDS = ("id", "account_id", "name", "currency", "timezone_name", "account_status")
_COMMON_FIELDS = ("id", "name", "status", "effective_status", "updated_time", "account_id")
EDGES: dict[str, tuple[str, tuple[str, ...]]] = {  # edge → (node type, its fields)
    "campaigns": ("Campaign", _COMMON_FIELDS),
    "adsets": ("AdSet", (*_COMMON_FIELDS, "campaign_id")),
    "ads": ("Ad", (*_COMMON_FIELDS, "campaign_id", "adset_id")),
}


def _object_values(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **obj,
        "updated_time": _graph_time(obj["updated_time"]),
        "account_id": obj["account_id"].removeprefix("act_"),
    }


# ---- insights ---------------------------------------------------------------------------------

INSIGHTS_FIELDS = (
    "account_id", "account_name", "account_currency", "campaign_id", "campaign_name",
    "adset_id", "adset_name", "ad_id", "ad_name", "spend", "impressions", "clicks", "actions",
    "date_start", "date_stop",
)  # fmt: skip
DEFAULT_INSIGHTS_FIELDS = ["impressions", "spend"]
LEVELS = ("account", "campaign", "adset", "ad")
DATE_PRESET = re.compile(r"today|yesterday|last_(3|7|14|28|30|90)d")


@dataclass(frozen=True)
class InsightsQuery:
    account_id: str
    level: str
    fields: list[str]
    since: date
    until: date
    increment: int | None  # days per row; None: the whole range in one row
    today: date  # in the account's time zone

    @property
    def days(self) -> int:
        """Days with data the range covers: none lie after today."""
        return max(0, (min(self.until, self.today) - self.since).days + 1)

    def periods(self) -> list[tuple[date, date]]:
        if self.increment is None:
            return [(self.since, self.until)] if self.days else []
        step = timedelta(days=self.increment)
        starts = (self.since + step * i for i in range(math.ceil(self.days / self.increment)))
        return [(start, min(start + step - timedelta(days=1), self.until)) for start in starts]

    def days_of(self, start: date, stop: date) -> list[date]:
        last = min(stop, self.today)
        return [start + timedelta(days=d) for d in range((last - start).days + 1)]


# One insights row to be: (date_start, date_stop, id of the object at the query's level).
_Group = tuple[date, date, str]


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _time_range(params: dict[str, str], today: date) -> tuple[date, date]:
    raw = params.get("time_range")
    if raw is None:
        return _preset(params.get("date_preset", "last_30d"), today)
    try:
        spec = orjson.loads(raw)
        since, until = date.fromisoformat(spec["since"]), date.fromisoformat(spec["until"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        _bad_param('param time_range must be {"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}')
    if since > until:
        _bad_param("time_range's since must not be after its until")
    return since, until


def _preset(name: str, today: date) -> tuple[date, date]:
    match = DATE_PRESET.fullmatch(name)
    if match is None:
        _bad_param(f"date_preset must match {DATE_PRESET.pattern}")
    if name == "today":
        return today, today
    yesterday = today - timedelta(days=1)
    days = int(match.group(1)) if match.group(1) else 1
    return yesterday - timedelta(days=days - 1), yesterday


def _increment(raw: str) -> int | None:
    if raw == "all_days":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 90:
        _bad_param("time_increment must be all_days or an integer from 1 to 90")
    return int(raw)


def _actions(leads: int, clicks: int) -> list[dict[str, str]] | None:
    if not leads:
        return None
    lead_rows = [{"action_type": kind, "value": str(leads)} for kind in LEAD_ACTION_TYPES]
    return [*lead_rows, {"action_type": "link_click", "value": str(clicks)}]


# ---- report runs ------------------------------------------------------------------------------


@dataclass
class ReportRun:
    """An async insights job: its rows are taken when it is created."""

    id: str
    account_id: str  # act_…
    since: date
    until: date
    created: datetime
    rows: list[dict[str, Any]]
    fails: bool
    polls: int = 0
    completed: datetime | None = None

    def progress(self, polls_until_done: int) -> tuple[str, int]:
        """(async_status, percent) after `polls` polls; 100% shows one poll before completion."""
        if self.polls >= polls_until_done:
            return ("Job Failed", 0) if self.fails else ("Job Completed", 100)
        if self.polls <= 1:
            return "Job Not Started", 0
        running = polls_until_done - 2  # polls between "not started" and done
        status = "Job Started" if self.polls == 2 and running > 1 else "Job Running"
        return status, 100 * (self.polls - 1) // running

    @property
    def done(self) -> bool:
        return self.completed is not None and not self.fails


@dataclass
class _Call:
    """What a request turned out to be, for its usage headers."""

    account: str | None = None  # act_… once the path names a known account or report run
    insights: bool = False


Handler = Callable[[dict[str, str], URL], dict[str, Any]]


class FacebookSimulator:
    """Graph API over `world`'s ad accounts; serve `app` with `SimServer`."""

    def __init__(
        self,
        world: World,
        *,
        app_id: str,
        app_secret: str,
        access_token: str,
        api_version: str = "v25.0",
        calls_per_hour_budget: int = 600,
        polls_until_done: int = 3,
        max_cells_per_request: int = 20_000,
    ) -> None:
        self.world = world
        self.app_id = app_id
        self.app_secret = app_secret
        self.access_token = access_token
        self.api_version = api_version
        self.calls_per_hour_budget = calls_per_hour_budget
        self.polls_until_done = max(1, polls_until_done)
        self.max_cells_per_request = max_cells_per_request
        self.jobs: dict[str, ReportRun] = {}
        self.calls: Counter[str] = Counter()  # requests naming each account, errors included
        self._usage: defaultdict[str, _Usage] = defaultdict(_Usage)
        self._app_usage = _Usage()
        self._expired_at: datetime | None = None
        self._failing_jobs = 0
        self._lock = threading.Lock()  # the server thread answers while tests steer
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # ---- steering, for tests --------------------------------------------------------------

    def expire_token(self) -> None:
        with self._lock:
            self._expired_at = self.world.now

    def set_usage(self, account_id: str, pct: float, regain_minutes: int = 0) -> None:
        """Replace the account's usage by `pct` for `regain_minutes` (or the rolling hour)."""
        window = timedelta(minutes=regain_minutes) if regain_minutes else USAGE_WINDOW
        with self._lock:
            self._usage[_act(account_id)] = _Usage(
                forced_pct=pct, forced_until=self.world.now + window
            )

    def fail_next_jobs(self, n: int) -> None:
        with self._lock:
            self._failing_jobs += n

    def usage_pct(self, account_id: str) -> float:
        with self._lock:
            return self._usage[_act(account_id)].pct(self.world.now, self.calls_per_hour_budget)

    # ---- request handling -----------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        call = _Call()
        try:
            params = await _request_params(request)
            with self._lock:
                status, body = 200, self._dispatch(request, params, call)
        except GraphError as err:
            status, body = err.status, err.body
        with self._lock:
            headers = self._usage_headers(call)
        headers["facebook-api-version"] = self.api_version
        return Response(orjson.dumps(body), status, headers, JSON_CONTENT_TYPE)

    def _dispatch(self, request: Request, params: dict[str, str], call: _Call) -> dict[str, Any]:
        version, *path = request.path_params["path"].split("/")
        self._check_version(version, path)
        method = _method(request, params)
        if path == ["debug_token"] and method == "GET":
            self._record(None, WEIGHT_READ)
            return self._debug_token(_token(request, params) or "", params)
        node, edges = (path[0] if path else ""), path[1:]
        call.account = self._account_of(node)
        call.insights = node in self.jobs or edges == ["insights"]
        if call.account:
            self.calls[call.account] += 1
        self._authenticate(_token(request, params))
        handler, weight = self._route(method, node, edges)
        self._check_throttle(call)
        self._record(call.account, weight)
        return handler(params, request.url)

    def _account_of(self, node: str) -> str | None:
        if node in self.jobs:
            return self.jobs[node].account_id
        return node if node in self.world.fb_accounts else None

    def _check_version(self, version: str, path: list[str]) -> None:
        if version == self.api_version:
            return
        if _version_key(version) > _version_key(self.api_version):
            _fail(2500, MSG_UNKNOWN_PATH.format(path="/" + "/".join(path)))
        _fail(2635, MSG_DEPRECATED_VERSION.format(version=self.api_version))

    def _route(self, method: str, node: str, edges: list[str]) -> tuple[Handler, int]:
        if node in self.jobs:
            job = self.jobs[node]
            if method == "GET" and not edges:
                return (lambda params, url: self._poll(job)), WEIGHT_READ
            if method == "GET" and edges == ["insights"]:
                return (lambda params, url: self._job_page(job, params, url)), WEIGHT_READ
        elif node in self.world.fb_accounts:
            account = self.world.fb_accounts[node]
            if len(edges) > 1 or (edges and edges[0] not in (*EDGES, "insights")):
                _fail(2500, MSG_UNKNOWN_PATH.format(path="/" + "/".join(edges)))
            if method == "GET" and not edges:
                return (lambda params, url: self._account_node(account, params)), WEIGHT_READ
            if method == "GET" and edges == ["insights"]:
                return (lambda params, url: self._insights(account, params, url)), WEIGHT_INSIGHTS
            if method == "POST" and edges == ["insights"]:
                return (lambda params, url: self._create_job(account, params)), WEIGHT_ASYNC_JOB
            if method == "GET" and edges:
                edge = edges[0]
                return (lambda params, url: self._objects(node, edge, params, url)), WEIGHT_READ
        _fail(
            100,
            MSG_UNSUPPORTED.format(method=method.lower(), id=node),
            subcode=33,
            type="GraphMethodException",
        )

    # ---- token ----------------------------------------------------------------------------

    def _token_expired_at(self) -> datetime | None:
        """When the token stopped working (expire_token, or its expiry passed), else None."""
        if self._expired_at is not None:
            return self._expired_at
        token = self.world.fb_token
        if not token["is_valid"]:
            return self.world.now
        expires = token["expires_at"]
        return expires if expires is not None and self.world.now >= expires else None

    def _authenticate(self, token: str | None) -> None:
        if token != self.access_token:
            _fail_known("token_invalid")
        expired = self._token_expired_at()
        if expired is not None:
            _fail(190, token_expired_message(expired, self.world.now), subcode=463)

    def _debug_token(self, caller: str, params: dict[str, str]) -> dict[str, Any]:
        user_ok = caller == self.access_token and self._token_expired_at() is None
        if caller != f"{self.app_id}|{self.app_secret}" and not user_ok:
            _fail(190, MSG_APP_TOKEN_INVALID if "|" in caller else MSG_TOKEN_INVALID)
        if "input_token" not in params:
            _bad_param("The parameter input_token is required")
        if params["input_token"] != self.access_token:
            error = {"code": 190, "message": MSG_INPUT_TOKEN_INVALID}
            return {"data": {"error": error, "is_valid": False, "scopes": []}}
        return {"data": self._token_facts()}

    def _token_facts(self) -> dict[str, Any]:
        token = self.world.fb_token
        expired = self._token_expired_at()
        issued = token["expires_at"] - LONG_LIVED_TOKEN if token["expires_at"] else START
        facts: dict[str, Any] = {
            "app_id": token["app_id"],
            "type": token["type"],
            "application": token["application"],
            "data_access_expires_at": _unix(token["data_access_expires_at"]),
        }
        if expired is not None:
            message = token_expired_message(expired, self.world.now)
            facts["error"] = {"code": 190, "message": message, "subcode": 463}
        return facts | {
            "expires_at": _unix(expired or token["expires_at"]),
            "is_valid": expired is None,
            "issued_at": _unix(issued),
            "scopes": list(token["scopes"]),
            "user_id": token["user_id"],
        }

    # ---- usage ----------------------------------------------------------------------------

    def _record(self, account_id: str | None, weight: int) -> None:
        self._app_usage.record(self.world.now, weight)
        if account_id is not None:
            self._usage[account_id].record(self.world.now, weight)

    def _check_throttle(self, call: _Call) -> None:
        if call.account is None:
            return
        if self._usage[call.account].pct(self.world.now, self.calls_per_hour_budget) >= 100:
            _fail_known("account_limit" if call.insights else "user_limit")

    def _usage_headers(self, call: _Call) -> dict[str, str]:
        now, budget = self.world.now, self.calls_per_hour_budget
        # The app's budget pools its accounts': it fills only when they all do.
        app_pct = self._app_usage.pct(now, budget * len(self.world.fb_accounts))
        if call.account is None:
            return usage_headers(app_pct=app_pct)
        usage = self._usage[call.account]
        return usage_headers(
            app_pct=app_pct,
            account_id=call.account,
            account_pct=usage.pct(now, budget),
            regain_minutes=usage.regain_minutes(now, budget),
            reset_seconds=usage.reset_seconds(now),
            insights=call.insights,
        )

    # ---- objects --------------------------------------------------------------------------

    def _account_node(self, account: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        fields = _fields(params)
        _check_fields(fields, ACCOUNT_FIELDS, "AdAccount")
        return _pick(account, fields)

    def _objects(
        self, account_id: str, edge: str, params: dict[str, str], url: URL
    ) -> dict[str, Any]:
        node, allowed = EDGES[edge]
        fields = _fields(params)
        _check_fields(fields, allowed, node)
        tests = _updated_time_filters(params.get("filtering"))
        table: dict[str, dict[str, Any]] = getattr(self.world, f"fb_{edge}")
        found = [
            obj
            for obj in table.values()
            if obj["account_id"] == account_id and all(test(obj) for test in tests)
        ]
        found.sort(key=lambda obj: obj["id"])
        return _page(found, params, url, lambda obj: _pick(_object_values(obj), fields))

    # ---- insights -------------------------------------------------------------------------

    def _insights_query(self, account: dict[str, Any], params: dict[str, str]) -> InsightsQuery:
        level = params.get("level", "account")
        if level not in LEVELS:
            _bad_param(f"level must be one of the following values: {', '.join(LEVELS)}")
        fields = _fields(params) or DEFAULT_INSIGHTS_FIELDS
        for i, name in enumerate(fields):
            if name not in INSIGHTS_FIELDS:
                choices = ", ".join(INSIGHTS_FIELDS)
                _bad_param(f"fields[{i}] must be one of the following values: {choices}")
        today = self.world.now.astimezone(ZoneInfo(account["timezone_name"])).date()
        since, until = _time_range(params, today)
        if since < _months_before(today, INSIGHTS_HISTORY_MONTHS):
            _fail_known("start_too_old")
        increment = _increment(params.get("time_increment", "all_days"))
        return InsightsQuery(account["id"], level, fields, since, until, increment, today)

    def _account_ads(self, account_id: str) -> list[dict[str, Any]]:
        ads = [ad for ad in self.world.fb_ads.values() if ad["account_id"] == account_id]
        return sorted(ads, key=lambda ad: ad["id"])

    def _cells(self, query: InsightsQuery) -> int:
        return query.days * len(self._account_ads(query.account_id))

    def _members(self, query: InsightsQuery) -> dict[str, list[str]]:
        """The account's ad ids under each object at the query's level."""
        level_key = {"ad": "id", "adset": "adset_id", "campaign": "campaign_id"}.get(query.level)
        members: dict[str, list[str]] = defaultdict(list)
        for ad in self._account_ads(query.account_id):
            members[ad[level_key] if level_key else query.account_id].append(ad["id"])
        return members

    def _groups(self, query: InsightsQuery, members: dict[str, list[str]]) -> list[_Group]:
        """Every row the query answers, in Graph's order: by period, then object id."""
        owner = {ad_id: object_id for object_id, ads in members.items() for ad_id in ads}
        insights, groups = self.world.fb_insights, []
        for start, stop in query.periods():
            active = {
                owner[ad_id]
                for day in query.days_of(start, stop)
                for ad_id in owner
                if (row := insights.get((ad_id, day))) and row["impressions"]
            }
            groups += [(start, stop, object_id) for object_id in sorted(active)]
        return groups

    def _names(self, level: str, object_id: str) -> dict[str, str]:
        """Ids and names of the object at `level` and of its parents."""
        names: dict[str, str] = {}
        for kind, table, parent in (
            ("ad", self.world.fb_ads, "adset_id"),
            ("adset", self.world.fb_adsets, "campaign_id"),
            ("campaign", self.world.fb_campaigns, None),
        ):
            if level == kind:
                obj = table[object_id]
                names |= {f"{kind}_id": obj["id"], f"{kind}_name": obj["name"]}
                if parent:
                    level, object_id = parent.removesuffix("_id"), obj[parent]
        return names

    def _renderer(
        self, query: InsightsQuery, members: dict[str, list[str]]
    ) -> Callable[[_Group], dict[str, Any]]:
        account = self.world.fb_accounts[query.account_id]
        insights = self.world.fb_insights
        names: dict[str, dict[str, str]] = {}  # per request: a page repeats the same objects

        def render(group: _Group) -> dict[str, Any]:
            start, stop, object_id = group
            rows = [
                row
                for day in query.days_of(start, stop)
                for ad_id in members[object_id]
                if (row := insights.get((ad_id, day)))
            ]
            if object_id not in names:
                names[object_id] = self._names(query.level, object_id)
            clicks, leads = sum(r["clicks"] for r in rows), sum(r["leads"] for r in rows)
            values = {
                "account_id": account["account_id"],
                "account_name": account["name"],
                "account_currency": account["currency"],
                **names[object_id],
                "spend": str(sum((r["spend"] for r in rows), Decimal("0.00"))),
                "impressions": str(sum(r["impressions"] for r in rows)),
                "clicks": str(clicks),
                "actions": _actions(leads, clicks),
                "date_start": start.isoformat(),
                "date_stop": stop.isoformat(),
            }
            row = {name: values[name] for name in query.fields if values.get(name) is not None}
            row.setdefault("date_start", values["date_start"])
            row.setdefault("date_stop", values["date_stop"])
            return row

        return render

    def _insights(
        self, account: dict[str, Any], params: dict[str, str], url: URL
    ) -> dict[str, Any]:
        query = self._insights_query(account, params)
        if self._cells(query) > self.max_cells_per_request:
            _fail_known("too_much_data")
        members = self._members(query)
        return _page(self._groups(query, members), params, url, self._renderer(query, members))

    def _create_job(self, account: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        query = self._insights_query(account, params)
        fails = self._cells(query) > self.max_cells_per_request * 10 or self._failing_jobs > 0
        if self._failing_jobs > 0:
            self._failing_jobs -= 1
        members = self._members(query)
        render = self._renderer(query, members)
        rows = [] if fails else [render(group) for group in self._groups(query, members)]
        job_id = str(REPORT_RUN_BASE + len(self.jobs) + 1)
        self.jobs[job_id] = ReportRun(
            job_id, account["id"], query.since, query.until, self.world.now, rows, fails
        )
        return {"report_run_id": job_id}

    def _poll(self, job: ReportRun) -> dict[str, Any]:
        job.polls += 1
        status, percent = job.progress(self.polls_until_done)
        if status == "Job Completed" and job.completed is None:
            job.completed = self.world.now
        return {
            "id": job.id,
            "account_id": job.account_id.removeprefix("act_"),
            "time_ref": _unix(job.created),
            "time_completed": _unix(job.completed),
            "async_status": status,
            "async_percent_completion": percent,
            "date_start": job.since.isoformat(),
            "date_stop": job.until.isoformat(),
        }

    def _job_page(self, job: ReportRun, params: dict[str, str], url: URL) -> dict[str, Any]:
        if not job.done:
            _fail_known("report_not_ready")
        return _page(job.rows, params, url, lambda row: row)


def _act(account_id: str) -> str:
    return account_id if account_id.startswith("act_") else f"act_{account_id}"


def _version_key(version: str) -> tuple[int, int]:
    """(major, minor) of "v25.0"; anything else sorts as the oldest, as unversioned calls are."""
    match = re.fullmatch(r"v(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

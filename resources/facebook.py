"""Facebook Marketing API (Graph): insights per ad per day, objects, token health.

API facts: ../shared/apis/facebook.md. Throttling is driven by the usage headers Facebook sends on
every response, errors included: above SLOW_DOWN_PCT we pause between calls, above STOP_PCT (or
on a throttling error code) a per-account circuit breaker opens until the vendor's
`estimated_time_to_regain_access` passes; other accounts keep going. No library does this for
Graph's headers, hence our own `UsageGate`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import orjson

from resources import vendor_json
from resources.errors import ConfigError, SourceError
from resources.http_body import read_body
from resources.settings import SettingsResource, field_value
from resources.tls import tls_context
from resources.vendor_clock import VendorClock

SOURCE = "Facebook"

# ---- Facebook's facts, declared once (../shared/apis/facebook.md); SQL binds them by name ----
# (contract.model_params.vendor_params); the assets, the jobs and the simulator's world import them.
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
# Error codes: https://developers.facebook.com/docs/marketing-api/error-reference
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TOKEN_CODE = 190
PERMISSION_CODES = frozenset({10, 100, 200})
REDUCE_DATA_CODE = 1
TRANSIENT_CODE = 2
RANGE_TOO_OLD_CODE = 3018
INSIGHT_FIELDS = (
    "ad_id,ad_name,adset_id,campaign_id,campaign_name,spend,impressions,clicks,actions,"
    "account_currency,date_start,date_stop"
)
OBJECT_FIELDS = {
    "campaigns": "id,name,status,effective_status,updated_time",
    "adsets": "id,name,status,effective_status,updated_time,campaign_id",
    "ads": "id,name,status,effective_status,updated_time,campaign_id,adset_id",
}
ASYNC_DONE, ASYNC_FAILED = "Job Completed", frozenset({"Job Failed", "Job Skipped"})
# Facebook revises a day's spend for up to 28 days (its attribution window). The days a later
# pull may still change are that window and one day more (a daily restatement comes up to a day
# after the last change of the window's oldest day) before Facebook's today: the restatement run
# re-pulls them with today, the marts flag them is_provisional, and a model build re-flags every
# day that left them since the build before (assets/jobs.py, sql/marts/targetologist_daily.sql,
# sql/touched/marts.targetologist_daily.sql take the number from here).
RESTATEMENT_WINDOW = timedelta(days=28)
PROVISIONAL_DAYS = RESTATEMENT_WINDOW.days + 1
# Graph keeps 37 months of insights and refuses an older start (RANGE_TOO_OLD_CODE); 36 months
# of 30 days stays inside it whatever the months' lengths
MAX_HISTORY = timedelta(days=36 * 30)

# ---- our own choices ---------------------------------------------------------------------------
SLOW_DOWN_PCT = 75.0  # of any usage header: pause between calls
STOP_PCT = 95.0  # open the account's breaker
# A throttled answer without `estimated_time_to_regain_access` (code 4 often has none) opens the
# breaker for Graph's usual short-term window, at most NO_ESTIMATE_WAITS times per account and
# run: then the account is skipped, as one throttled past the breaker's patience is.
NO_ESTIMATE_WINDOW_SECONDS = 60.0
NO_ESTIMATE_WAITS = 2
MIN_PAGE_LIMIT = 25


class ReduceData(Exception):
    """Graph's code 1: the request asked for too much; the caller splits it."""


class AsyncJobFailed(Exception):
    """An async insights job ended failed or timed out; the caller splits the range."""


class AccountThrottled(Exception):
    """The account's breaker is open for longer than we wait in one run, or Graph kept
    throttling it without an estimate through NO_ESTIMATE_WAITS waits (`estimated` False)."""

    def __init__(self, account: str, seconds: float, estimated: bool = True) -> None:
        super().__init__(f"{account} throttled for {seconds:.0f} s")
        self.account = account
        self.seconds = seconds
        self.estimated = estimated

    def label(self) -> str:
        """`act_1 (45 min)`, or how long we waited when Graph gave no estimate."""
        if self.estimated:
            return f"{self.account} ({self.seconds / 60:.0f} min)"
        return (
            f"{self.account} (no estimate from Facebook; still throttled after "
            f"{NO_ESTIMATE_WAITS} waits of {NO_ESTIMATE_WINDOW_SECONDS:.0f} s)"
        )


@dataclass
class CallStats:
    requests: int = 0
    throttled_waits: int = 0
    waited_seconds: float = 0.0
    max_usage_pct: float = 0.0
    split_requests: int = 0
    failed_jobs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        """Add one to a counter; accounts load in threads of their own."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


@dataclass
class UsageGate:
    """Per-account pacing from the usage headers, and a circuit breaker per account."""

    max_wait_seconds: float
    slow_down_seconds: float
    stats: CallStats
    clock: VendorClock = field(default_factory=VendorClock)
    usage: dict[str, float] = field(default_factory=dict)
    open_until: dict[str, float] = field(default_factory=dict)
    unestimated: dict[str, int] = field(default_factory=dict)  # waits without an estimate
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def before_call(self, account: str) -> None:
        """Wait, in the calling thread only, until `account` may call: an account's open breaker
        never holds up the others (each loads in its own thread)."""
        wait = self.open_until.get(account, 0.0) - self.clock.monotonic()
        if wait > self.max_wait_seconds:
            raise AccountThrottled(account, wait)
        pct = self.usage.get(account, 0.0)
        if wait <= 0 and pct > SLOW_DOWN_PCT:
            # linear in how close we are to the stop line, so a busy account slows smoothly
            wait = self.slow_down_seconds * (pct - SLOW_DOWN_PCT) / (STOP_PCT - SLOW_DOWN_PCT)
        if wait > 0:
            with self._lock:
                self.stats.throttled_waits += 1
                self.stats.waited_seconds += wait
            self.clock.sleep(wait)

    def observe(self, account: str, headers: httpx.Headers) -> bool:
        """Note the usage headers; True when they opened the account's breaker."""
        pct, regain_minutes = usage_from_headers(headers)
        with self._lock:
            self.usage[account] = pct
            self.stats.max_usage_pct = max(self.stats.max_usage_pct, pct)
            if pct >= STOP_PCT or regain_minutes > 0:
                self.trip(account, regain_minutes * 60)
                return True
        return False

    def trip(self, account: str, seconds: float) -> None:
        """Open the account's breaker for the vendor's estimate, or (none) for Graph's short
        window, NO_ESTIMATE_WAITS times at most: then AccountThrottled."""
        with self._lock:
            if seconds <= 0:
                self.unestimated[account] = self.unestimated.get(account, 0) + 1
                if self.unestimated[account] > NO_ESTIMATE_WAITS:
                    waited = NO_ESTIMATE_WAITS * NO_ESTIMATE_WINDOW_SECONDS
                    raise AccountThrottled(account, waited, estimated=False)
                seconds = NO_ESTIMATE_WINDOW_SECONDS
            until = self.clock.monotonic() + seconds
            self.open_until[account] = max(self.open_until.get(account, 0.0), until)


def usage_from_headers(headers: httpx.Headers) -> tuple[float, float]:
    """(highest usage % in any header, longest estimated_time_to_regain_access in minutes)."""
    pcts: list[float] = [0.0]
    regain: list[float] = [0.0]
    for name in ("x-app-usage", "x-ad-account-usage", "x-fb-ads-insights-throttle"):
        body = _header_json(headers, name)
        if isinstance(body, dict):
            pcts += [float(v) for k, v in body.items() if _is_pct(k, v)]
    buc = _header_json(headers, "x-business-use-case-usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                pcts += [float(v) for k, v in entry.items() if _is_pct(k, v)]
                regain.append(float(entry.get("estimated_time_to_regain_access") or 0))
    return max(pcts), max(regain)


def _is_pct(key: str, value: Any) -> bool:
    return isinstance(value, int | float) and (
        key in ("call_count", "total_cputime", "total_time") or key.endswith("_util_pct")
    )


def _header_json(headers: httpx.Headers, name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# The variable each setting field is bound to (definitions.py binds them, messages name them).
VARIABLES: dict[str, str] = {
    "access_token": "FACEBOOK_ACCESS_TOKEN",
    "ad_account_ids": "FACEBOOK_AD_ACCOUNT_IDS",
    "app_id": "FACEBOOK_APP_ID",
    "app_secret": "FACEBOOK_APP_SECRET",
    "graph_url": "FACEBOOK_GRAPH_URL",
    "api_version": "FACEBOOK_API_VERSION",
}


class FacebookResource(SettingsResource):
    """Facebook Marketing API for the ad accounts in FACEBOOK_AD_ACCOUNT_IDS.

    The settings are optional fields: a missing one fails, at its first use in a step, only the
    Facebook steps, with one line naming the variable and the fix; blank URL and version fields
    mean the defaults.
    """

    SOURCE = SOURCE
    VARIABLES = VARIABLES
    REQUIRED = {f: () for f in ("access_token", "ad_account_ids", "app_id", "app_secret")}

    access_token: str | None = None  # a system-user or long-lived user token with ads_read
    ad_account_ids: str | None = None  # act_123,act_456
    app_id: str | None = None  # the app's id and secret: debug_token reads the token's expiry
    app_secret: str | None = None
    graph_url: str | None = DEFAULT_GRAPH_URL
    api_version: str | None = DEFAULT_API_VERSION
    page_limit: int = 500
    chunk_days: int = 30  # days per async insights job; a failed or refused job is halved
    backfill_days: int = 90
    max_breaker_wait_seconds: float = 120.0
    slow_down_seconds: float = 2.0
    poll_first_seconds: float = 0.5
    poll_max_seconds: float = 15.0
    job_start_timeout_seconds: float = 300.0
    job_finish_timeout_seconds: float = 1800.0
    timeout_seconds: float = 60.0
    max_attempts: int = 5

    def accounts(self) -> list[str]:
        raw = self.setting("ad_account_ids", "a comma list of ad account ids, e.g. act_123,act_456")
        ids = [a.strip() for a in raw.split(",") if a.strip()]
        return [a if a.startswith("act_") else f"act_{a}" for a in ids]

    def open(self) -> FacebookClient:
        base = field_value(self.graph_url) or DEFAULT_GRAPH_URL
        if not base.startswith(("http://", "https://")):
            raise ConfigError(
                SOURCE, f"{SOURCE}: FACEBOOK_GRAPH_URL must start with https:// (got {base!r})."
            )
        version = field_value(self.api_version) or DEFAULT_API_VERSION
        token = self.setting("access_token", "a system-user or long-lived user token with ads_read")
        return FacebookClient(self, f"{base.rstrip('/')}/{version}", token)


class FacebookClient:
    def __init__(self, config: FacebookResource, base_url: str, token: str) -> None:
        self.config = config
        self.stats = CallStats()
        self.clock = VendorClock()
        self.gate = UsageGate(
            config.max_breaker_wait_seconds, config.slow_down_seconds, self.stats, self.clock
        )
        self._token = token
        self.http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(config.timeout_seconds, connect=10.0),
            verify=tls_context(),
            headers={"Authorization": f"Bearer {token}"},
        )

    def close(self) -> None:
        self.http.close()

    def token_fingerprint(self) -> str:
        """Which token was used, for the record, without storing the token."""
        return hashlib.sha256(self._token.encode()).hexdigest()[:16]

    def __enter__(self) -> FacebookClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one call -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        account: str,
        params: dict[str, Any] | None = None,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One Graph call, retried; `form` goes in a POST body, never in the URL."""
        for attempt in range(1, self.config.max_attempts + 1):
            self.gate.before_call(account)
            self.stats.count("requests")
            try:
                response = self.http.request(
                    method, path, params=params, data=form, headers=headers
                )
            except httpx.TransportError as exc:
                self._backoff_or_fail(attempt, f"{type(exc).__name__} on {path}")
                continue
            tripped = self.gate.observe(account, response.headers)
            self.clock.note(response)
            if response.status_code == 200:
                try:
                    return vendor_json.loads_as(read_body(response), dict)
                except vendor_json.BodyError as exc:  # a proxy's page, a cut body: retried
                    self._backoff_or_fail(attempt, f"HTTP 200 on {path}, but {exc}")
                    continue
            error = _graph_error(response)
            code = error.get("code")
            if code in THROTTLE_CODES:
                if not tripped:  # an answer without usage headers: no estimate
                    self.gate.trip(account, 0.0)
                continue
            if code == REDUCE_DATA_CODE:
                raise ReduceData(error.get("message", ""))
            if code == TRANSIENT_CODE or error.get("is_transient") or response.status_code >= 500:
                self._backoff_or_fail(attempt, f"HTTP {response.status_code} on {path}")
                continue
            raise self._terminal(account, response.status_code, error)
        raise SourceError(
            SOURCE,
            f"{SOURCE}: {account} still throttled after {self.config.max_attempts} attempts.",
            transient=True,
        )

    def _backoff_or_fail(self, attempt: int, what: str) -> None:
        if attempt == self.config.max_attempts:
            raise SourceError(
                SOURCE,
                f"{SOURCE}: still failing after {attempt} attempts ({what}).",
                transient=True,
            )
        self.clock.sleep(random.uniform(0, min(8.0, 0.25 * 2**attempt)))

    def _terminal(self, account: str, status: int, error: dict[str, Any]) -> SourceError:
        code, sub = error.get("code"), error.get("error_subcode")
        message = error.get("message", "")
        if code == TOKEN_CODE:
            return SourceError(
                SOURCE,
                f"{SOURCE}: the token in FACEBOOK_ACCESS_TOKEN is no longer valid (code 190"
                f"{f'/{sub}' if sub else ''}: {message}). Generate a new long-lived or "
                "system-user token with ads_read and put it in FACEBOOK_ACCESS_TOKEN.",
            )
        if code in PERMISSION_CODES:
            return SourceError(
                SOURCE,
                f"{SOURCE}: {account} refused the request (code {code}: {message}). Check that "
                "the token in FACEBOOK_ACCESS_TOKEN has ads_read on this account and that "
                "FACEBOOK_AD_ACCOUNT_IDS lists it correctly.",
            )
        return SourceError(
            SOURCE, f"{SOURCE}: {account} answered HTTP {status} (code {code}: {message})."
        )

    def server_now(self) -> datetime:
        return self.clock.now()

    # ---- paging -------------------------------------------------------------------------------

    def pages(
        self, path: str, account: str, params: dict[str, Any], limit: int | None = None
    ) -> Iterator[list[dict]]:
        """Cursor paging by `paging.cursors.after` (the `next` URL would carry the token)."""
        params = {**params, "limit": limit or self.config.page_limit}
        while True:
            body = self.call("GET", path, account, params)
            rows = body.get("data") or []
            if rows:
                yield rows
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after or not rows:
                return
            params["after"] = after

    # ---- reads --------------------------------------------------------------------------------

    def account_info(self, account: str) -> dict[str, Any]:
        return self.call(
            "GET", f"/{account}", account, {"fields": "name,currency,timezone_name,account_status"}
        )

    def objects(self, account: str, kind: str, since: int | None) -> Iterator[list[dict]]:
        params: dict[str, Any] = {"fields": OBJECT_FIELDS[kind]}
        if since is not None:
            params["filtering"] = orjson.dumps(
                [{"field": "updated_time", "operator": "GREATER_THAN", "value": since}]
            ).decode()
        return self.pages(f"/{account}/{kind}", account, params)

    def insights_sync(
        self, account: str, since: date, until: date, limit: int | None = None
    ) -> Iterator[list[dict]]:
        """Daily ad rows for [since, until]. "Reduce the amount of data" halves the range, and
        for a single day the page size. Pages already yielded were whole, so a retry of the
        rest repeats at most rows the loader merges by key."""
        limit = limit or self.config.page_limit
        try:
            yield from self.pages(
                f"/{account}/insights", account, _insight_params(since, until), limit
            )
        except ReduceData:
            self.stats.count("split_requests")
            if since < until:
                middle = since + (until - since) // 2
                yield from self.insights_sync(account, since, middle, limit)
                yield from self.insights_sync(account, middle + timedelta(days=1), until, limit)
            elif limit > MIN_PAGE_LIMIT:
                yield from self.insights_sync(account, since, until, limit // 2)
            else:
                raise SourceError(
                    SOURCE, f"{SOURCE}: {account} refuses even one day of insights ({since})."
                ) from None

    def insights_async(self, account: str, since: date, until: date) -> Iterator[list[dict]]:
        """An async report job per chunk of days; a failed job is split and run again."""
        try:
            report = self._run_job(account, since, until)
            yield from self.pages(f"/{report}/insights", account, {})
        except (AsyncJobFailed, ReduceData):
            self.stats.count("failed_jobs")
            if since == until:
                raise SourceError(
                    SOURCE, f"{SOURCE}: {account}: the insights job for {since} keeps failing."
                ) from None
            middle = since + (until - since) // 2
            yield from self.insights_async(account, since, middle)
            yield from self.insights_async(account, middle + timedelta(days=1), until)

    def _run_job(self, account: str, since: date, until: date) -> str:
        """Start a job and poll it with capped doubling backoff; return its report id."""
        started = self.call("POST", f"/{account}/insights", account, _insight_params(since, until))
        report = str(started["report_run_id"])
        begun = self.clock.monotonic()
        delay = self.config.poll_first_seconds
        while True:
            status = self.call("GET", f"/{report}", account)
            state = status.get("async_status")
            if state == ASYNC_DONE:
                return report
            if state in ASYNC_FAILED:
                raise AsyncJobFailed(f"{report}: {state}")
            elapsed = self.clock.monotonic() - begun
            not_started = state == "Job Not Started"
            if not_started and elapsed > self.config.job_start_timeout_seconds:
                raise AsyncJobFailed(f"{report} did not start in time")
            if elapsed > self.config.job_finish_timeout_seconds:
                raise AsyncJobFailed(f"{report} did not finish in time")
            self.clock.sleep(delay)
            delay = min(delay * 2, self.config.poll_max_seconds)

    def debug_token(self) -> dict[str, Any]:
        app_id = self.config.setting("app_id", "the app id")
        secret = self.config.setting("app_secret", "the app secret")
        # both tokens are secrets, so neither goes in the URL: the app token in the
        # Authorization header, the inspected one in a POST form body that Graph reads as a GET
        # (its `method` override)
        body = self.call(
            "POST",
            "/debug_token",
            "app",
            form={"input_token": self._token, "method": "GET"},
            headers={"Authorization": f"OAuth {app_id}|{secret}"},
        )
        return dict(body.get("data") or {})


def _insight_params(since: date, until: date) -> dict[str, Any]:
    return {
        "level": "ad",
        "fields": INSIGHT_FIELDS,
        "time_range": orjson.dumps(
            {"since": since.isoformat(), "until": until.isoformat()}
        ).decode(),
        "time_increment": 1,
        # empty breakdowns: non-empty defaults made totals disagree with Ads Manager elsewhere
        "action_breakdowns": "[]",
    }


def _graph_error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"message": response.text[:200], "code": None}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {"message": str(body)[:200], "code": None}

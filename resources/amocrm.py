"""AmoCRM REST v4: OAuth with rotating refresh tokens, a client-side rate limiter, honest errors.

API facts: ../shared/apis/amocrm.md. The token pair lives in `ops.oauth_tokens`. The refresh token
is single use and AmoCRM spends it the moment it answers (its maintainers: "globally single-use",
amocrm/amocrm-api-php#475; no grace period), so a pair can only be lost between AmoCRM's answer and
our write. A refresh keeps that window to the answer's trip: it commits its intent first (the
row's `refresh_started_at`, beside the refresh token it spends), calls holding only a session
advisory lock (two runs never spend one token; a killed process's lock dies with its
connection), and writes the answer in its own statement before anything else. A 5xx or a dropped
connection is retried; if AmoCRM then calls the token revoked, or a later run finds the marker
and is told so, the pair was lost in flight and the message says exactly that.

`python -m resources.amocrm authorize CODE` exchanges an authorization code for the first pair.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import orjson

from resources import vendor_json
from resources.errors import ConfigError, SourceError
from resources.http_body import read_body
from resources.settings import SettingsResource, env, field_value, not_configured
from resources.streams import read_ahead
from resources.tls import tls_context
from resources.vendor_clock import VendorClock
from resources.warehouse import WarehouseResource

SOURCE = "AmoCRM"
INTEGRATION = "amocrm"

# ---- AmoCRM's facts, declared once (../shared/apis/amocrm.md); SQL binds them by name -------
# (contract.model_params.vendor_params), the contract, the checks and the simulator import them.
WON_STATUS_ID = 142  # "successfully realized": the same id in every pipeline
LOST_STATUS_ID = 143  # "closed and not realized"
UNSORTED_STATUS_TYPE = 1  # a status's `type` for the pipeline's "unsorted" entry stage
# an unused refresh token dies after three months; each refresh issues a new one
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
PAGE_LIMIT = 250  # the vendor's maximum for /leads
EVENTS_LIMIT = 100  # the vendor's maximum for /events
CUSTOM_FIELDS_LIMIT = 50  # the vendor's maximum for /leads/custom_fields
TOKEN_PATH = "/oauth2/access_token"
REVOKED_HINT = "Token has been revoked"  # AmoCRM's hint for a spent refresh token

# ---- our own choices -------------------------------------------------------------------------
# pages a scan reads while the one before them is loaded (a page is 250 leads, about 0.3 MB):
# the next request goes out as soon as the limiter allows, not after the page is staged
READ_AHEAD_PAGES = 4
RETRY_LIMIT_STATUSES = frozenset({500, 502, 503})
MAX_ATTEMPTS = 6
REFRESH_LOCK = "amocrm:token_refresh"  # the session advisory lock a refresh holds
AUTHORIZE = (
    "authorize the integration again with `python -m resources.amocrm authorize CODE` (a new "
    "code from the integration's settings in AmoCRM)"
)


class RateLimiter:
    """Our own limiter: the limit is per integration and the vendor punishes bursts (429, then a
    403 block). Starts average `rate` (a token bucket that lends back up to BUCKET_STARTS a slow
    answer left unused, so one slow page does not lower the rate for good), and never lets a
    request reach AmoCRM within a second of VENDOR_PER_SECOND others, which is what the vendor
    counts, at its end: arrivals, not our starts. A request's arrival is bounded by its answer
    (AmoCRM cannot answer what has not arrived) once `start` has seen it, and until then by its
    start plus ARRIVAL_JITTER_SECONDS; a new request starts only when at most VENDOR_PER_SECOND - 1
    of those bounds fall within the second before it. A start is counted when its caller
    actually leaves `wait`, not when it was due: a thread that wakes late from its sleep (a busy
    CPU) must not bunch its request with the next ones inside the vendor's second."""

    BUCKET_STARTS = 2
    VENDOR_PER_SECOND = 7
    VENDOR_WINDOW_SECONDS = 1.0
    # How much later than the requests sent after it a request still unanswered may reach AmoCRM:
    # network jitter of tens of ms is normal, and a lost packet costs a retransmission (200 ms at
    # least on Linux). It costs a scan nothing: a scan sends one request at a time, so the one
    # VENDOR_PER_SECOND back is answered (its answer bounds it) before the next one starts; only
    # VENDOR_PER_SECOND + 1 requests in flight at once would be held to VENDOR_PER_SECOND in
    # every second plus this.
    ARRIVAL_JITTER_SECONDS = 0.25

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._tokens = 1.0
        self._refilled = time.monotonic()
        self._arrived_by: list[float] = []  # each recent start's latest possible arrival
        self._lock = threading.Lock()

    @contextmanager
    def start(self) -> Iterator[None]:
        """Waits for the request's turn, then bounds its arrival by the moment its answer (or
        its failure) came back."""
        slot = self._wait()
        try:
            yield
        finally:
            with self._lock:
                if slot in self._arrived_by:  # else already out of every window that counts
                    self._arrived_by[self._arrived_by.index(slot)] = min(slot, time.monotonic())

    def _wait(self) -> float:
        while True:
            with self._lock:
                now = time.monotonic()
                elapsed = now - self._refilled
                tokens = min(self.BUCKET_STARTS, self._tokens + elapsed / self.interval)
                start = now + max(0.0, 1.0 - tokens) * self.interval
                window = now - self.VENDOR_WINDOW_SECONDS
                self._arrived_by = [b for b in self._arrived_by if b > window]
                if len(self._arrived_by) >= self.VENDOR_PER_SECOND:
                    latest = sorted(self._arrived_by)[-self.VENDOR_PER_SECOND]
                    start = max(start, latest + self.VENDOR_WINDOW_SECONDS)
                if start <= now:
                    self._tokens, self._refilled = tokens - 1.0, now
                    slot = now + self.ARRIVAL_JITTER_SECONDS
                    self._arrived_by.append(slot)
                    return slot
            time.sleep(start - now)


# the average the vendor allows: the limiter's bounds on arrival keep every second at or under it
DEFAULT_RATE = float(RateLimiter.VENDOR_PER_SECOND)
_LIMITERS: dict[tuple[str, float], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def account_limiter(base_url: str, rate: float) -> RateLimiter:
    """The one limiter of an account in this process: AmoCRM counts an integration's requests
    whichever client sent them, and a run's assets open a client each, one after another (the
    reference step's first request came 0.1 s after the events step's last, the eighth in a
    second)."""
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault((base_url, rate), RateLimiter(rate))


@dataclass
class RequestStats:
    requests: int = 0
    pages: int = 0
    throttled: int = 0  # 429s seen
    retries: int = 0
    refreshes: int = 0


# The variable each setting field is bound to (definitions.py binds them, messages name them).
VARIABLES: dict[str, str] = {
    "base_url": "AMOCRM_BASE_URL",
    "client_id": "AMOCRM_CLIENT_ID",
    "client_secret": "AMOCRM_CLIENT_SECRET",
    "redirect_uri": "AMOCRM_REDIRECT_URI",
    "access_token": "AMOCRM_ACCESS_TOKEN",
    "refresh_token": "AMOCRM_REFRESH_TOKEN",
    "max_rps": "AMOCRM_MAX_RPS",
}


class AmoCrmResource(SettingsResource):
    """AmoCRM account (AMOCRM_BASE_URL) through its v4 API and OAuth 2.

    The settings are optional fields: a missing one fails, at its first use in a step, only the
    AmoCRM steps, with one line naming the variable and the fix.
    """

    SOURCE = SOURCE
    VARIABLES = VARIABLES
    REQUIRED = {f: () for f in ("base_url", "client_id", "client_secret", "redirect_uri",
                                "access_token")}  # fmt: skip

    base_url: str | None = None  # https://SUBDOMAIN.amocrm.ru
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uri: str | None = None
    # the first token pair: ops.oauth_tokens holds the current one once a run has stored it
    access_token: str | None = None
    refresh_token: str | None = None
    # text, parsed by us: lower than the default when other integrations share the budget
    max_rps: str | None = None
    requests_per_second: float = DEFAULT_RATE
    timeout_seconds: float = 30.0
    default_retry_after_seconds: float = 2.0

    def rate(self) -> float:
        """AMOCRM_MAX_RPS, else `requests_per_second`; anything but a positive number is a
        ConfigError naming the variable."""
        raw = field_value(self.max_rps)
        try:
            rate = float(raw) if raw else self.requests_per_second
        except ValueError:
            rate = -1.0
        if rate <= 0:
            raise ConfigError(
                SOURCE, f"{SOURCE}: AMOCRM_MAX_RPS must be a positive number (got {raw!r})."
            )
        return rate

    def stored_settings(self, warehouse: WarehouseResource | None) -> frozenset[str]:
        """A token pair stored (by `authorize` or a run) stands in for AMOCRM_ACCESS_TOKEN."""
        stored = warehouse is not None and TokenStore(warehouse, self).stored()
        return frozenset({"access_token"} if stored else ())

    def open(self, warehouse: WarehouseResource, last_success: datetime | None) -> AmoCrmClient:
        base_url = self.setting("base_url", "https://SUBDOMAIN.amocrm.ru")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                SOURCE, f"{SOURCE}: AMOCRM_BASE_URL must start with https:// (got {base_url!r})."
            )
        tokens = TokenStore(warehouse, self)
        return AmoCrmClient(self, base_url.rstrip("/"), tokens, last_success)


class GrantRefused(SourceError):
    """AmoCRM refused an OAuth grant: its `hint`, and whether an attempt of the same grant had
    failed on the way first (a 5xx or a dropped connection: AmoCRM may have spent the token)."""

    def __init__(self, message: str, hint: str, after_failure: bool) -> None:
        super().__init__(SOURCE, message)
        self.hint = hint
        self.after_failure = after_failure


def _lost_in_flight(started: datetime) -> SourceError:
    when = started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return SourceError(
        SOURCE,
        f"{SOURCE} calls the stored refresh token already used ({REVOKED_HINT}) because the "
        f"token refresh started at {when} never received or stored AmoCRM's answer (its process "
        "was stopped or its connection dropped after AmoCRM had issued the new pair, which "
        f"only that answer carried), so the integration's token pair is lost: {AUTHORIZE}.",
    )


class TokenStore:
    """The current token pair in ops.oauth_tokens, seeded from the resource's the first time."""

    def __init__(self, warehouse: WarehouseResource, config: AmoCrmResource) -> None:
        self.warehouse = warehouse
        self.config = config

    def stored(self) -> bool:
        """Whether a pair is stored (False on a warehouse whose schema is not created yet)."""
        with self.warehouse.connection() as conn:
            row = conn.execute("SELECT to_regclass('ops.oauth_tokens')").fetchone()
            if row is None or row[0] is None:
                return False
            query = "SELECT 1 FROM ops.oauth_tokens WHERE integration = %s"
            return conn.execute(query, (INTEGRATION,)).fetchone() is not None

    def current(self) -> tuple[str, str | None, datetime | None]:
        """(access token, refresh token, access expiry); seeds the row from env if absent."""
        with self.warehouse.connection() as conn:
            row = conn.execute(
                "SELECT access_token, refresh_token, access_expires_at FROM ops.oauth_tokens"
                " WHERE integration = %s",
                (INTEGRATION,),
            ).fetchone()
            if row:
                return row[0], row[1], row[2]
            access = self.config.setting(
                "access_token",
                "set the first access token, or run `python -m resources.amocrm authorize CODE`",
            )
            refresh = field_value(self.config.refresh_token)
            conn.execute(
                "INSERT INTO ops.oauth_tokens (integration, access_token, refresh_token,"
                " refresh_issued_at) VALUES (%s, %s, %s, now()) ON CONFLICT DO NOTHING",
                (INTEGRATION, access, refresh),
            )
        return self.current()

    def rotate(self, failed_access: str, exchange: Callable[[dict[str, Any]], Any]) -> str:
        """Spend the stored refresh token for a new pair, stored the moment it arrives.

        If another run refreshed since `failed_access` was read, its new token is returned as it
        is: refreshing again would spend the refresh token that run just stored.
        """
        with self.warehouse.session_lock(REFRESH_LOCK) as conn:
            row = conn.execute(
                "SELECT access_token, refresh_token, refresh_started_at FROM ops.oauth_tokens"
                " WHERE integration = %s",
                (INTEGRATION,),
            ).fetchone()
            if row is None:
                raise ConfigError(SOURCE, f"{SOURCE}: no token pair stored; authorize first.")
            access, refresh, interrupted = row
            if access != failed_access:
                return str(access)
            if not refresh:
                raise SourceError(
                    SOURCE,
                    f"{SOURCE} answered 401 Unauthorized and there is no refresh token (a "
                    "long-lived token has expired or was revoked): put a new token in "
                    "AMOCRM_ACCESS_TOKEN and clear ops.oauth_tokens, or authorize again with "
                    "`python -m resources.amocrm authorize CODE`.",
                )
            # the intent, committed before the token is spent and kept until the answer is
            # stored; an interrupted refresh's stays, so every later message names that one
            started = conn.execute(
                "UPDATE ops.oauth_tokens"
                " SET refresh_started_at = coalesce(refresh_started_at, clock_timestamp())"
                " WHERE integration = %s RETURNING refresh_started_at",
                (INTEGRATION,),
            ).fetchone()[0]  # type: ignore[index]
            try:
                pair = exchange({"grant_type": "refresh_token", "refresh_token": refresh})
            except GrantRefused as refused:
                if refused.hint == REVOKED_HINT and (interrupted or refused.after_failure):
                    raise _lost_in_flight(started) from None
                # AmoCRM's plain answer to this very grant: nothing was in flight
                conn.execute(
                    "UPDATE ops.oauth_tokens SET refresh_started_at = NULL WHERE integration = %s",
                    (INTEGRATION,),
                )
                raise
            conn.execute(
                "UPDATE ops.oauth_tokens SET access_token = %s, refresh_token = %s,"
                " access_expires_at = now() + make_interval(secs => %s),"
                " refresh_issued_at = now(), refresh_started_at = NULL,"
                " refreshes = refreshes + 1, updated_at = now() WHERE integration = %s",
                (pair["access_token"], pair["refresh_token"], pair["expires_in"], INTEGRATION),
            )
        return str(pair["access_token"])

    def store(self, pair: dict[str, Any]) -> None:
        with self.warehouse.connection() as conn:
            conn.execute(
                "INSERT INTO ops.oauth_tokens (integration, access_token, refresh_token,"
                " access_expires_at, refresh_issued_at) VALUES"
                " (%s, %s, %s, now() + make_interval(secs => %s), now())"
                " ON CONFLICT (integration) DO UPDATE SET access_token = EXCLUDED.access_token,"
                " refresh_token = EXCLUDED.refresh_token,"
                " access_expires_at = EXCLUDED.access_expires_at,"
                " refresh_issued_at = now(), refresh_started_at = NULL, updated_at = now()",
                (INTEGRATION, pair["access_token"], pair.get("refresh_token"), pair["expires_in"]),
            )


class AmoCrmClient:
    def __init__(
        self,
        config: AmoCrmResource,
        base_url: str,
        tokens: TokenStore,
        last_success: datetime | None,
    ) -> None:
        self.config = config
        self.base_url = base_url
        self.tokens = tokens
        self.last_success = last_success
        self.stats = RequestStats()
        self.limiter = account_limiter(base_url, config.rate())
        self.http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(config.timeout_seconds, connect=10.0),
            verify=tls_context(),
            headers={"User-Agent": "traffic-warehouse/1.0"},
        )
        self._access: str | None = None
        self.clock = VendorClock()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AmoCrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads --------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One API call with our retry policy; None for 204 (no rows: not an error)."""
        params = dict(params or {})
        refreshed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            access = self._access_token()
            self.stats.requests += 1
            try:
                with self.limiter.start():
                    response = self.http.get(
                        path, params=params, headers={"Authorization": f"Bearer {access}"}
                    )
            except httpx.TransportError as exc:
                self._retry_or_fail(attempt, f"{type(exc).__name__} on {path}")
                continue
            self.clock.note(response)
            status = response.status_code
            if status == 204:
                return None
            if status == 200:
                try:
                    return vendor_json.loads_as(read_body(response), dict)
                except vendor_json.BodyError as exc:  # a proxy's page, a cut body: retried
                    self._retry_or_fail(attempt, f"HTTP 200 on {path}, but {exc}")
                    continue
            if status == 401 and not refreshed:
                refreshed = True
                self._access = self.tokens.rotate(access, self._exchange)
                self.stats.refreshes += 1
                continue
            if status == 429:
                self.stats.throttled += 1
                self._sleep_retry_after(response, attempt)
                continue
            if status == 504 and "limit" in params:
                # a gateway timeout on a big page: ask for less
                params["limit"] = max(25, int(params["limit"]) // 2)
                self._retry_or_fail(attempt, f"HTTP 504 on {path}")
                continue
            if status in RETRY_LIMIT_STATUSES or status == 504:
                self._retry_or_fail(attempt, f"HTTP {status} on {path}")
                continue
            raise self._terminal(status, response)
        raise AssertionError("unreachable")

    def pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of `_embedded[key]`, following page numbers until no `_links.next`, read
        ahead of the caller (READ_AHEAD_PAGES)."""
        return read_ahead(partial(self._pages, path, key, params), READ_AHEAD_PAGES)

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        page = 1
        while True:
            body = self.get(path, {**params, "page": page})
            if body is None:
                return
            rows = body.get("_embedded", {}).get(key) or []
            self.stats.pages += 1
            if rows:
                yield rows
            if not body.get("_links", {}).get("next") or not rows:
                return
            page += 1

    def leads_updated(self, since: int, until: int) -> Iterator[list[dict[str, Any]]]:
        """Leads with updated_at in [since, until], ascending, as pages read ahead of the caller
        (READ_AHEAD_PAGES; each request needs the page before it, see `_leads_updated`)."""
        return read_ahead(partial(self._leads_updated, since, until), READ_AHEAD_PAGES)

    def _leads_updated(self, since: int, until: int) -> Iterator[list[dict[str, Any]]]:
        """The pages of `leads_updated`.

        Page numbers shift when leads are updated during a scan (an updated lead leaves the
        window and everything after it moves up a place, so a plain page walk skips a lead).
        So each request starts from the largest updated_at seen, with page 1; leads on that
        same second are seen twice and deduplicated by the loader. Only when a whole page shares
        one second do we step the page number within it.
        """
        lower, page, last_ids = since, 1, set[int]()
        while True:
            params = {
                "filter[updated_at][from]": lower,
                "filter[updated_at][to]": until,
                "order[updated_at]": "asc",
                "limit": PAGE_LIMIT,
                "with": "contacts",
                "page": page,
            }
            body = self.get("/api/v4/leads", params)
            rows = (body or {}).get("_embedded", {}).get("leads") or []
            if not rows:
                return
            self.stats.pages += 1
            # a lead without an id or updated_at (or not an object) is passed on for the
            # loader to quarantine; paging follows the well-formed ones
            stamped = [r for r in rows if _stamped(r)]
            fresh = [r for r in rows if not (_stamped(r) and r["id"] in last_ids)]
            if fresh:
                yield fresh
            if not (body or {}).get("_links", {}).get("next"):
                return
            top = max((r["updated_at"] for r in stamped), default=lower)
            if top == lower:
                page += 1
                last_ids |= {r["id"] for r in stamped}
            else:
                lower, page, last_ids = top, 1, {r["id"] for r in stamped if r["updated_at"] == top}

    def pipelines(self) -> list[dict[str, Any]]:
        """Every lead pipeline with its statuses under `_embedded.statuses` (one page: AmoCRM
        allows at most 50 pipelines per account and returns them all)."""
        body = self.get("/api/v4/leads/pipelines") or {}
        return list(body.get("_embedded", {}).get("pipelines") or [])

    def lead_custom_fields(self) -> list[dict[str, Any]]:
        """Every custom field defined on leads (id, name, code, type...), all pages."""
        pages = self.pages(
            "/api/v4/leads/custom_fields", "custom_fields", {"limit": CUSTOM_FIELDS_LIMIT}
        )
        return [field for page in pages for field in page]

    def server_now(self) -> datetime:
        """AmoCRM's clock; the account probe is the cheapest call that tells it."""
        if self.clock.last is None:
            self.get("/api/v4/account")
        return self.clock.now()

    # ---- errors and tokens ---------------------------------------------------------------------

    def _access_token(self) -> str:
        if self._access is None:
            access, refresh, expires = self.tokens.current()
            soon = datetime.now(UTC) + timedelta(minutes=1)
            if refresh and expires is not None and expires < soon:
                access = self.tokens.rotate(access, self._exchange)
                self.stats.refreshes += 1
            self._access = access
        return self._access

    def _exchange(self, grant: dict[str, Any]) -> dict[str, Any]:
        """POST /oauth2/access_token; the answer is stored by the caller before it is used."""
        body = {
            "client_id": self.config.setting("client_id", "the integration's ID"),
            "client_secret": self.config.setting("client_secret", "the integration's secret key"),
            "redirect_uri": self.config.setting(
                "redirect_uri", "the redirect URI registered for the integration"
            ),
            **grant,
        }
        failed = False  # an attempt of this grant failed on the way: AmoCRM may have spent it
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.stats.requests += 1
            try:
                with self.limiter.start():
                    response = self.http.post(TOKEN_PATH, json=body)
            except httpx.TransportError as exc:
                failed = True
                self._retry_or_fail(attempt, f"{type(exc).__name__} on {TOKEN_PATH}")
                continue
            status = response.status_code
            if status == 200:
                return dict(orjson.loads(response.content))
            if status in RETRY_LIMIT_STATUSES or status in (429, 504):
                # the vendor's trouble, not the grant's: the same token is offered again
                failed = True
                self._retry_or_fail(attempt, f"HTTP {status} on {TOKEN_PATH}")
                continue
            raise self._refused(grant["grant_type"], response, failed)
        raise AssertionError("unreachable")

    def _refused(self, grant_type: str, response: httpx.Response, failed: bool) -> GrantRefused:
        problem = _json_or_empty(response)
        hint = str(problem.get("hint") or problem.get("detail") or response.reason_phrase)
        return GrantRefused(
            f"{SOURCE} refused the OAuth {grant_type} grant (HTTP {response.status_code}:"
            f" {hint}). The stored refresh token can no longer be used; {AUTHORIZE}, or check"
            " AMOCRM_CLIENT_ID, AMOCRM_CLIENT_SECRET and AMOCRM_REDIRECT_URI.",
            hint,
            failed,
        )

    def _retry_or_fail(self, attempt: int, what: str) -> None:
        if attempt == MAX_ATTEMPTS:
            raise SourceError(
                SOURCE,
                f"{SOURCE}: still failing after {attempt} attempts ({what}). {self._stale()}",
                transient=True,
            )
        self.stats.retries += 1
        time.sleep(random.uniform(0, min(8.0, 0.25 * 2**attempt)))

    def _sleep_retry_after(self, response: httpx.Response, attempt: int) -> None:
        if attempt == MAX_ATTEMPTS:
            raise SourceError(
                SOURCE,
                f"{SOURCE}: still rate limited (HTTP 429) after {attempt} attempts. "
                f"{self._stale()}",
                transient=True,
            )
        header = response.headers.get("Retry-After", "")
        wait = float(header) if header.replace(".", "", 1).isdigit() else None
        time.sleep(wait if wait is not None else self.config.default_retry_after_seconds * attempt)

    def _stale(self) -> str:
        when = (
            self.last_success.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            if self.last_success
            else "never loaded"
        )
        return f"Data from AmoCRM stays as of {when}."

    def _terminal(self, status: int, response: httpx.Response) -> SourceError:
        """402 and 403 are a person's job: no retries, one sentence on what to do."""
        if status == 402:
            text = (
                f"{SOURCE} answered 402 Payment Required: the account's subscription has "
                "expired; renew it."
            )
        elif status == 403:
            text = (
                f"{SOURCE} answered 403 Forbidden: the account or this server's IP address is "
                "blocked (usually after repeated 429s); ask AmoCRM support to lift the block."
            )
        elif status == 401:
            text = (
                f"{SOURCE} answered 401 Unauthorized again right after a token refresh: the "
                "integration was disabled or its access revoked; authorize again with "
                "`python -m resources.amocrm authorize CODE`."
            )
        else:
            detail = _json_or_empty(response).get("detail") or response.reason_phrase
            text = f"{SOURCE} answered HTTP {status}: {detail}."
        return SourceError(SOURCE, f"{text} {self._stale()}")


def _stamped(lead: Any) -> bool:
    return (
        isinstance(lead, dict)
        and isinstance(lead.get("id"), int)
        and isinstance(lead.get("updated_at"), int)
    )


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def main() -> int:
    """`python -m resources.amocrm authorize CODE`: store the first token pair. A missing or
    wrong setting is one line and exit 2, like every command of the project; AmoCRM refusing
    the code is its answer in one line and exit 1."""
    from resources.environment import configuration_errors

    parser = argparse.ArgumentParser(prog="python -m resources.amocrm")
    parser.add_argument("action", choices=["authorize"])
    parser.add_argument("code", help="authorization code from the integration's settings")
    args = parser.parse_args()
    return configuration_errors(lambda: authorize(args.code))


def authorize(code: str) -> int:
    from resources import embedded_pg
    from resources.environment import load_settings_file

    load_settings_file()
    config = AmoCrmResource(**AmoCrmResource.bound())  # as definitions.py binds it
    # the exchange needs every setting but the token it is about to get: all named at once
    missing = config.missing()
    missing.pop(VARIABLES["access_token"], None)
    if missing:
        raise ConfigError(SOURCE, not_configured(SOURCE, missing))
    with embedded_pg.owned_server():
        name = embedded_pg.WAREHOUSE_VARIABLE
        url = env(name) or embedded_pg.resolve_urls()[name]
        warehouse = WarehouseResource(url=url)
        warehouse.apply_ddl()
        client = config.open(warehouse, None)
        try:
            pair = client._exchange({"grant_type": "authorization_code", "code": code})
        except ConfigError:
            raise
        except SourceError as exc:  # AmoCRM's answer (a used or expired code): exit 1
            print(exc.message, file=sys.stderr)
            return 1
        finally:
            client.close()
        TokenStore(warehouse, config).store(pair)
    print("AmoCRM authorized: the token pair is stored in ops.oauth_tokens.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

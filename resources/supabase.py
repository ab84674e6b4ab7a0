"""Supabase projects (PostgREST through supabase-py): keyset scans with our own retry policy.

One injected `httpx.Client` per project (timeouts, pooling, keep-alive); supabase-py's own retry is
off because it also sleeps on errors we classify as terminal and never backs off with jitter.
API facts: ../shared/apis/supabase.md.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import httpx
import psycopg
from postgrest.exceptions import APIError, APIErrorFromJSON, generate_default_error_message
from postgrest.types import CountMethod
from psycopg import sql
from psycopg.types.string import ByteaBinaryLoader
from pydantic import ValidationError
from supabase import ClientOptions, create_client

from resources import vendor_json
from resources.errors import ConfigError, SourceError, require_setting
from resources.http_body import read_body
from resources.settings import SettingsResource, bind, field_value
from resources.streams import fan_in, fewer_collections
from resources.tls import tls_context
from resources.vendor_clock import VendorClock

# Retry policy: transient only. 401 and PGRST errors are a person's job, never retried.
RETRY_STATUSES = frozenset({502, 503, 504, 520})
INVALID_KEY_MESSAGE = "Invalid API key"
# PostgREST error codes: https://docs.postgrest.org/en/stable/references/errors.html
PGRST_JWT_MALFORMED = "PGRST301"
PGRST_JWT_EXPIRED = "PGRST303"
TABLE_MISSING_CODES = frozenset({"PGRST205", "42P01"})
# The request budget of one project: requests in flight at once (a full read fetches this many key
# ranges side by side). Each holds one of the project's database connections while it runs, and a
# small Supabase instance pools about 15 for the app and every reader together.
IN_FLIGHT = 4
# The optional function a project installs so that deletions are found in a few requests: per key
# bucket a count and a digest of its keys (sql/source/warehouse_key_digest.sql). The direct path
# runs the same computation as SQL (`digest_sql`), and so does the raw mirror.
KEY_DIGEST = "warehouse_key_digest"
KEY_DIGEST_FILE = f"sql/source/{KEY_DIGEST}.sql"
# A request body a proxy in front of PostgREST commonly takes (nginx's client_max_body_size)
PROXY_BODY_BYTES = 1 << 20
INSTALL_KEY_DIGEST = (
    f"to find deletions in a few requests, run {KEY_DIGEST_FILE} in the project's SQL editor, "
    "then NOTIFY pgrst, 'reload schema'"
)
# bucket → (rows, digest): what a digest request answers for its non-empty buckets
Digests = dict[int, tuple[int, int]]


@dataclass(frozen=True)
class Keyset:
    """How a table is scanned: by (timestamp, key) when rows change, by the key alone otherwise.

    `quoted` says the key's values are text (uuid, slugs): PostgREST needs them double-quoted
    inside `or=(...)`, where a comma or a parenthesis would otherwise end the value.
    """

    columns: tuple[str, ...]
    quoted: bool = False

    @property
    def mutable(self) -> bool:
        return len(self.columns) == 2

    @property
    def key(self) -> str:
        return self.columns[-1]


BY_UPDATED_AT = Keyset(("updated_at", "id"))
BY_ID = Keyset(("id",))


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str  # the PostgreSQL type name, as PostgREST's OpenAPI `format` says it
    required: bool = False  # NOT NULL without a default


@dataclass(frozen=True)
class TableShape:
    """A source table as discovery sees it: its columns in order and its primary key."""

    name: str
    columns: tuple[SourceColumn, ...]
    primary_key: tuple[str, ...] = ()
    inferred: bool = False  # from served rows, because the schema could not be read

    def column(self, name: str) -> SourceColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass
class ScanStats:
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rows: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, pages: int = 0, requests: int = 0, retries: int = 0, rows: int = 0) -> None:
        """Count, from any of the threads fetching pages at once."""
        with self._lock:
            self.pages += pages
            self.requests += requests
            self.retries += retries
            self.rows += rows


class TableReader(Protocol):
    """What a raw asset reads through: the REST API or the project's database."""

    stats: ScanStats

    def describe(self) -> dict[str, TableShape]: ...

    def server_now(self) -> datetime: ...

    def scan(
        self, table: str, keyset: Keyset, after: dict[str, Any] | None, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]: ...

    def scan_all(
        self, table: str, keyset: Keyset, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]: ...

    def scan_range(
        self, table: str, keyset: Keyset, lo: Any, hi: Any, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]: ...

    def count(self, table: str, keyset: Keyset, lo: Any = None, hi: Any = None) -> int: ...

    def scan_keys(
        self, table: str, keyset: Keyset, keys: Sequence[Any]
    ) -> Iterator[list[dict[str, Any]]]: ...

    def key_digests(self, table: str, keyset: Keyset, bounds: Sequence[str]) -> Digests: ...

    def bucket_keys(
        self, table: str, keyset: Keyset, bounds: Sequence[str], buckets: Sequence[int]
    ) -> set[str]: ...


class DigestUnavailable(Exception):
    """The source cannot give key digests; the message says why (and, when the function is
    missing, how to install it). Deletion detection then counts rows over key ranges."""


class _LastResponse(threading.local):
    """Filled by an httpx hook, for the thread that made the request (pages are fetched from
    several at once): postgrest-py's APIError carries no HTTP status. The clock is shared."""

    def __init__(self, clock: VendorClock) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.clock = clock
        self.response: httpx.Response | None = None


# The variable each setting field is bound to, after the project's prefix (SUPABASE_MAIN_...);
# the keys in the order they are preferred: legacy JWT keys and the new sb_ keys.
FIELD_SUFFIXES = {
    "url": "URL",
    "service_role_key": "SERVICE_ROLE_KEY",
    "secret_key": "SECRET_KEY",
    "anon_key": "ANON_KEY",
    "publishable_key": "PUBLISHABLE_KEY",
    "db_url": "DB_URL",
}
KEY_FIELDS = tuple(f for f in FIELD_SUFFIXES if f.endswith("_key"))


def env_prefix(project: str) -> str:
    """The start of a project's variables' names: SUPABASE_MAIN for the project `main`."""
    return f"SUPABASE_{project.upper()}"


def variable(project: str, field: str) -> str:
    """The variable a project's setting field is bound to: `main`, `url` → SUPABASE_MAIN_URL."""
    return f"{env_prefix(project)}_{FIELD_SUFFIXES[field]}"


class SupabaseResource(SettingsResource):
    """One Supabase project, read through PostgREST (or its database when `db_url` is set).

    Its settings are optional fields bound in definitions.py to `<env_prefix>_URL` and the key
    variables (the service-role key preferred, the anon key a fallback): a missing one fails only
    this project's steps, at their first use, with a message that names it; Dagster resolves
    them when a run starts, so no key ever sits in the run's config.
    """

    # the project's database (the bulk path) stands in for its URL and key
    REQUIRED = {"url": ("db_url",), KEY_FIELDS[0]: (*KEY_FIELDS[1:], "db_url")}

    project: str  # display name: Main, Tripwire, Traffic
    env_prefix: str  # SUPABASE_MAIN ...: the variables' names in messages
    url: str | None = None  # https://<ref>.supabase.co
    service_role_key: str | None = None
    secret_key: str | None = None  # sb_secret_...
    anon_key: str | None = None
    publishable_key: str | None = None  # sb_publishable_...
    db_url: str | None = None  # postgresql://...: the bulk path, instead of the REST API
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0
    page_size: int = 1000

    @classmethod
    def bindings(cls, project: str, env_prefix: str) -> dict[str, Any]:
        """The fields of the project whose variables start with `env_prefix`, bound to them."""
        variables = {f: f"{env_prefix}_{suffix}" for f, suffix in FIELD_SUFFIXES.items()}
        return {"project": project, "env_prefix": env_prefix, **bind(variables)}

    @property
    def source(self) -> str:
        return f"Supabase {self.project}"

    def variables(self) -> dict[str, str]:
        return {f: f"{self.env_prefix}_{suffix}" for f, suffix in FIELD_SUFFIXES.items()}

    def _env(self, name: str) -> tuple[str, str | None]:
        """(variable, value) of the setting field `name`."""
        return self.variables()[name], field_value(getattr(self, name))

    def _key(self) -> tuple[str, str]:
        """(variable it came from, key): a key that may read the schema (service-role JWT or
        `sb_secret_...`) before a read-only one (anon JWT or `sb_publishable_...`)."""
        for key_field in KEY_FIELDS:
            name, value = self._env(key_field)
            if value:
                return name, value
        names = " or ".join(self.variables()[f] for f in KEY_FIELDS)
        raise ConfigError(
            self.source,
            f"{self.source}: no API key is set (set {names}; the service-role or secret key "
            "also lets discovery read the schema; all are in the project's Settings → API).",
        )

    @contextmanager
    def open(self) -> Iterator[TableReader]:
        """The project's REST API, or its PostgreSQL directly when `<prefix>_DB_URL` is set."""
        db_var, db_url = self._env("db_url")
        if db_url:
            with DirectProject.connect(self, db_var, db_url) as direct:
                yield direct
            return
        url_var, url = self._env("url")
        url = require_setting(
            self.source, url_var, url, "set it to the project URL, https://<ref>.supabase.co"
        )
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                self.source,
                f"{self.source}: {url_var} must start with https:// (got {url[:60]!r}).",
            )
        key_var, key = self._key()
        last = _LastResponse(VendorClock())

        def remember(response: httpx.Response) -> None:
            last.status = response.status_code
            last.headers = dict(response.headers)
            last.clock.note(response)
            last.response = response

        http = httpx.Client(
            verify=tls_context(),
            timeout=httpx.Timeout(self.timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT),
            event_hooks={"response": [remember]},
        )
        try:
            client = create_client(
                url, key, options=ClientOptions(httpx_client=http, postgrest_client_retry=False)
            )
            yield SupabaseProject(self, client, url_var, key_var, last, _Rest(http, url, key))
        finally:
            http.close()


def supabase_resource(project: str, env_prefix: str, **tuning: Any) -> SupabaseResource:
    """The project's resource with its settings bound to `<env_prefix>_...` variables."""
    return SupabaseResource(**SupabaseResource.bindings(project, env_prefix), **tuning)


class SchemaForbidden(SourceError):
    """The key may read tables but not the schema (an anon or publishable key)."""


@dataclass(frozen=True)
class _Rest:
    http: httpx.Client
    url: str
    key: str

    def get_root(self) -> httpx.Response:
        headers = {"apikey": self.key, "Authorization": f"Bearer {self.key}",
                   "Accept": "application/openapi+json, application/json"}  # fmt: skip
        return self.http.get(f"{self.url.rstrip('/')}/rest/v1/", headers=headers)


class SupabaseProject:
    """An open project: scans tables page by page, retrying transient failures only."""

    def __init__(
        self,
        config: SupabaseResource,
        client: Any,
        url_var: str,
        key_var: str,
        last: _LastResponse,
        rest: _Rest,
    ) -> None:
        self.config = config
        self.client = client
        self.url_var = url_var
        self.key_var = key_var
        self._last = last
        self._rest = rest
        self.stats = ScanStats()
        # the project's RPC functions, from its OpenAPI document (None: not read, or forbidden)
        self.functions: frozenset[str] | None = None

    def server_now(self) -> datetime:
        """The project's clock: the `Date` of its last answer."""
        return self._last.clock.now()

    def describe(self) -> dict[str, TableShape]:
        """Every table the REST API exposes, from PostgREST's OpenAPI root (`GET /rest/v1/`).

        Supabase serves that root to the service-role / secret key only; an anon or publishable
        key gets 403 there while it may still read the tables, which we say as such.
        """
        src = self.config.source
        self.stats.add(requests=1)
        try:
            response = self._rest.get_root()
        except httpx.TransportError as exc:
            raise SourceError(
                src,
                f"{src}: cannot read the schema at {self.url_var}/rest/v1/ "
                f"({type(exc).__name__}). Check the URL and network.",
                transient=True,
            ) from None
        if response.status_code == 403:
            raise SchemaForbidden(
                src,
                f"{src}: the key in {self.key_var} may not read the schema (PostgREST's OpenAPI "
                "root answers 403 to anon and publishable keys); set "
                f"{self.config.variables()['service_role_key']} to the project's service-role or "
                "secret key (Settings → API) so discovery can list the tables.",
            )
        body = _json_or_none(response)
        if response.status_code == 200 and isinstance(body, dict):
            self.functions = rpc_functions(body)
            return parse_openapi(body)
        if isinstance(body, dict) and response.status_code not in RETRY_STATUSES:
            raise self._terminal("the schema", APIError(body))
        raise SourceError(
            src,
            f"{src}: the schema at {self.url_var}/rest/v1/ answered HTTP {response.status_code}.",
            transient=response.status_code in RETRY_STATUSES,
        )

    def scan(
        self, table: str, keyset: Keyset, after: dict[str, Any] | None, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows ordered by the keyset, strictly after `after` (a row's keyset values).

        PostgREST silently caps a response at max-rows, so a short page is not the end: only an
        empty one is. Offsets are never used: they shift under concurrent writes.
        """
        position = dict(after) if after else None
        while True:
            page = self._request(
                table, partial(_keyset_page, keyset=keyset, after=position, columns=columns)
            )
            if not page:
                position = undated_phase(keyset, position)
                if position is None:
                    return
                continue
            self.stats.add(pages=1, rows=len(page))
            yield page
            # the last row that has a key: a row without one is the loader's to quarantine
            last = next((r for r in reversed(page) if isinstance(r, dict) and r.get(keyset.key)
                         is not None), None)  # fmt: skip
            if last is None:
                raise SourceError(
                    self.config.source,
                    f"{self.config.source}: a page of table {table} has no row with its key "
                    f"{keyset.key}; the scan cannot go on from it.",
                )
            position = {c: last.get(c) for c in keyset.columns}

    def scan_all(
        self, table: str, keyset: Keyset, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """The whole table in pages, in no overall order: split into up to IN_FLIGHT key ranges
        of about equal rows (cut where `offset` says), fetched side by side."""
        ranged = Keyset((keyset.key,), keyset.quoted)
        total = self.count(table, ranged)
        parts = max(1, min(IN_FLIGHT, total // (2 * self.config.page_size)))
        cuts: list[Any] = []
        for i in range(1, parts):
            cut = self._key_at(table, ranged, total * i // parts)
            if cut is not None and cut not in cuts:
                cuts.append(cut)
        bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
        ranges = [partial(self.scan_range, table, ranged, lo, hi, columns) for lo, hi in bounds]
        yield from ranges[0]() if len(ranges) == 1 else fan_in(ranges, 2 * IN_FLIGHT)

    def scan_range(
        self, table: str, keyset: Keyset, lo: Any, hi: Any, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of the rows whose key is in (lo, hi] (None: unbounded), in key order."""
        position = lo
        while True:
            build = partial(_range_query, keyset=keyset, lo=position, hi=hi, columns=columns)
            page = self._request(table, build)
            if not page:
                return
            self.stats.add(pages=1, rows=len(page))
            yield page
            position = page[-1].get(keyset.key)

    def count(self, table: str, keyset: Keyset, lo: Any = None, hi: Any = None) -> int:
        """Rows whose key is in (lo, hi]: a GET of one row with `Prefer: count=exact`, whose
        answer's Content-Range carries the total (`0-0/3573`, `*/0`). Not a HEAD: a failed
        count's body says why (PGRST205, an expired key, a proxy's page), as any page's does."""
        build = partial(_range_query, keyset=keyset, lo=lo, hi=hi, columns=keyset.key, count=True)
        return self._request(table, build, limit=1, read=self._total)

    def scan_keys(
        self, table: str, keyset: Keyset, keys: Sequence[Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The key column of the rows among `keys` (at most a page of them) the source holds."""
        listed = ",".join(_quote(k) if keyset.quoted else str(k) for k in keys)
        page = self._request(table, lambda q: q(keyset.key).filter(keyset.key, "in", f"({listed})"))
        self.stats.add(pages=1, rows=len(page))
        yield page

    def _key_at(self, table: str, keyset: Keyset, offset: int) -> Any:
        build = partial(_range_query, keyset=keyset, lo=None, hi=None, columns=keyset.key)
        page = self._request(table, lambda q: build(q).offset(offset), limit=1)
        return page[0].get(keyset.key) if page else None

    def _total(self) -> int:
        self._page()  # a body that is not JSON (a proxy's page) is retried as a page's is
        total = self._last.headers.get("content-range", "").rpartition("/")[2]
        if not total.isdigit():
            raise SourceError(
                self.config.source,
                f"{self.config.source}: a count answered Content-Range {total!r:.40}, not a total.",
                transient=True,
            )
        return int(total)

    def key_digests(self, table: str, keyset: Keyset, bounds: Sequence[str]) -> Digests:
        """Each non-empty key bucket's rows and digest, from the project's KEY_DIGEST function:
        one POST whatever the buckets, its answer one jsonb value (max-rows does not cap it)."""
        answer = self._digest_call(table, keyset, bounds, None)
        return {int(b): (int(n), int(d)) for b, n, d in answer}

    def bucket_keys(
        self, table: str, keyset: Keyset, bounds: Sequence[str], buckets: Sequence[int]
    ) -> set[str]:
        """The keys (as text) of the given buckets, from the same function."""
        return {str(k) for k in self._digest_call(table, keyset, bounds, buckets)}

    def _digest_call(
        self, table: str, keyset: Keyset, bounds: Sequence[str], buckets: Sequence[int] | None
    ) -> list[Any]:
        if self.functions is not None and KEY_DIGEST not in self.functions:
            raise DigestUnavailable(
                f"the project has no function {KEY_DIGEST}: {INSTALL_KEY_DIGEST}"
            )
        params = {"table_name": table, "key_column": keyset.key, "bounds": list(bounds),
                  "buckets": None if buckets is None else list(buckets)}  # fmt: skip

        def call() -> list[Any]:
            _send(self.client.rpc(KEY_DIGEST, params))
            return self._page()

        try:
            return self._attempts(f"function {KEY_DIGEST}", call)
        except SourceError as failed:  # a person's to mend; the counts still find every row
            if self._last.status == 413 and self._last.response is not None:
                sent = self._last.response.request.headers.get("content-length", "?")
                raise DigestUnavailable(
                    f"a proxy in front of {self.url_var} refused its {sent}-byte request body "
                    f"(HTTP 413); raise its limit to {PROXY_BODY_BYTES >> 20} MiB (nginx: "
                    f"client_max_body_size {PROXY_BODY_BYTES >> 20}m)"
                ) from None
            raise DigestUnavailable(
                f"its function {KEY_DIGEST} failed ({failed.message}); mend it or drop it"
            ) from None

    def _request(
        self,
        table: str,
        build: Callable[[Any], Any],
        limit: int | None = None,
        read: Callable[[], Any] | None = None,
    ) -> Any:
        def page() -> Any:
            query = build(self.client.table(table).select)
            _send(query.limit(limit or self.config.page_size))
            return (read or self._page)()

        return self._attempts(f"table {table}", page)

    def _attempts(self, what: str, request: Callable[[], Any]) -> Any:
        """`request`'s answer, retrying transient failures only, with capped backoff."""
        cfg = self.config
        for attempt in range(1, cfg.max_attempts + 1):
            self.stats.add(requests=1)
            try:
                return request()
            except vendor_json.BodyError as exc:  # a proxy's page, a cut body: retried
                if attempt == cfg.max_attempts:
                    raise SourceError(
                        cfg.source,
                        f"{cfg.source}: {what} answered HTTP {self._last.status}, but "
                        f"{exc} (after {attempt} attempts).",
                        transient=True,
                    ) from None
            except httpx.TransportError as exc:
                if attempt == cfg.max_attempts:
                    raise SourceError(
                        cfg.source,
                        f"{cfg.source}: cannot read {what} at {self.url_var} after "
                        f"{attempt} attempts ({type(exc).__name__}). Check the URL and network.",
                        transient=True,
                    ) from None
            except APIError as exc:
                status = self._last.status
                if status not in RETRY_STATUSES:
                    raise self._terminal(what, exc) from None
                if attempt == cfg.max_attempts:
                    raise SourceError(
                        cfg.source,
                        f"{cfg.source}: {what} still answers HTTP {status} after "
                        f"{attempt} attempts: {exc.message}",
                        transient=True,
                    ) from None
            self.stats.add(retries=1)
            time.sleep(_backoff(attempt, cfg.backoff_seconds, cfg.backoff_cap_seconds))
        raise AssertionError("unreachable")

    def _page(self) -> list[Any]:
        """The page as the project sent it, parsed exactly: postgrest-py's own parse turns a
        body that is not JSON into its text and reads numbers beyond a double as infinity."""
        assert self._last.response is not None
        return vendor_json.loads_as(read_body(self._last.response), list)

    def _terminal(self, what: str, exc: APIError) -> SourceError:
        """One clear sentence per vendor error: what happened, which variable, what to do."""
        src, code, message, hint = self.config.source, exc.code, exc.message or "", exc.hint
        names = self.config.variables()
        keys = f"{names['service_role_key']} or {names['anon_key']}"
        if message == INVALID_KEY_MESSAGE or message.startswith("No API key"):
            text = f"{src}: {message} (check {keys})."
        elif code == PGRST_JWT_EXPIRED:
            text = (
                f"{src}: {message} ({code}): the key in {self.key_var} has expired; "
                "issue a new one in the project's Settings → API."
            )
        elif code == PGRST_JWT_MALFORMED:
            text = (
                f"{src}: the key in {self.key_var} is not a valid JWT for this project "
                f"({code}: {message}); copy it again from the project's Settings → API."
            )
        elif code in TABLE_MISSING_CODES:
            text = f"{src}: {what} not found ({code}: {message})."
        else:
            text = f"{src}: {what}: HTTP {self._last.status} {code or ''} {message}".strip()
        if hint:
            text += f" Hint: {hint}"
        return SourceError(src, text)


def _send(query: Any) -> None:
    """postgrest-py's `execute` without its parse of a good body: `_page` parses it exactly, so
    a second parse (by the standard library, in pure Python for the most part) was a tenth of a
    full load's CPU."""
    response = query.request.send(httpx.Headers())
    if response.is_success:
        return
    try:
        error = APIErrorFromJSON.model_validate_json(response.content)
    except ValidationError:
        raise APIError(generate_default_error_message(response)) from None
    raise APIError(dict(error))


def _keyset_page(query: Any, keyset: Keyset, after: dict[str, Any] | None, columns: str) -> Any:
    """One page in keyset order (PostgREST sorts NULL timestamps last) strictly after `after`.

    A position without a key (`{ts: T, key: None}`) starts at T inclusive. A dated position
    reads dated rows only, an undated one (`{ts: None, ...}`) the NULL rows: `undated_phase`.
    """
    query = query(columns)
    for column in keyset.columns:
        query = query.order(column)
    if after is None:
        return query
    key, value = keyset.key, after.get(keyset.key)
    if not keyset.mutable:
        return query.gt(key, value)
    ts_column, ts = keyset.columns[0], after.get(keyset.columns[0])
    if ts is None:
        query = query.is_(ts_column, "null")
        return query if value is None else query.gt(key, value)
    query = query.gte(ts_column, ts)
    if value is None:
        return query
    quoted = _quote(value) if keyset.quoted else value
    return query.or_(f"{ts_column}.gt.{ts},{key}.gt.{quoted}")


def undated_phase(keyset: Keyset, position: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where a scan goes on once its dated rows are read: the rows whose timestamp is NULL
    (sorted last), from the first. A filter "dated after T or NULL" would keep the database
    from the change column's index: at 1M rows an hourly read's first page scanned the whole
    index (358-854 ms instead of 0.3). None when no such phase follows."""
    if keyset.mutable and position is not None and position.get(keyset.columns[0]) is not None:
        return {keyset.columns[0]: None, keyset.key: None}
    return None


def _range_query(
    query: Any, keyset: Keyset, lo: Any, hi: Any, columns: str, count: bool = False
) -> Any:
    """Rows whose key is in (lo, hi], None meaning unbounded, in key order; `count` asks the
    total as well."""
    key = keyset.key
    query = query(columns, count=CountMethod.exact) if count else query(columns)
    query = query.order(key)
    if lo is not None:
        query = query.gt(key, lo)
    if hi is not None:
        query = query.lte(key, hi)
    return query


def _quote(value: Any) -> str:
    """A value inside PostgREST's `or=(...)`: double-quoted, with `\\` and `"` escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def rpc_functions(document: dict[str, Any]) -> frozenset[str]:
    """The functions PostgREST's OpenAPI document lists (its `/rpc/<name>` paths)."""
    return frozenset(p.removeprefix("/rpc/") for p in document.get("paths") or {}
                     if p.startswith("/rpc/"))  # fmt: skip


PK_MARK = "<pk/>"  # PostgREST's marker in a primary key column's OpenAPI description


def parse_openapi(document: dict[str, Any]) -> dict[str, TableShape]:
    """Tables and views of PostgREST's OpenAPI (Swagger 2.0) document, columns in order."""
    shapes = {}
    for name, definition in (document.get("definitions") or {}).items():
        required = set(definition.get("required") or ())
        properties = definition.get("properties") or {}
        columns = tuple(
            SourceColumn(
                column, str(prop.get("format") or prop.get("type") or "text"), column in required
            )  # fmt: skip
            for column, prop in properties.items()
        )
        pk = tuple(c for c, p in properties.items() if PK_MARK in (p.get("description") or ""))
        shapes[name] = TableShape(name, columns, pk)
    return shapes


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff with full jitter, so parallel runs don't retry in step."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class DirectProject:
    """The bulk path: the project's own PostgreSQL, read with a server-side cursor.

    Rows are rendered by PostgreSQL's `row_to_json`, as PostgREST renders them, so both paths
    hand the loader the very same records.
    """

    fetch_rows = 5000

    def __init__(self, config: SupabaseResource, conn: psycopg.Connection, db_var: str) -> None:
        self.config = config
        self.conn = conn
        self.db_var = db_var
        self.stats = ScanStats()

    @classmethod
    @contextmanager
    def connect(cls, config: SupabaseResource, db_var: str, url: str) -> Iterator[DirectProject]:
        try:
            conn = psycopg.connect(url, connect_timeout=10, application_name="traffic-warehouse")
        except psycopg.Error as exc:
            raise SourceError(
                config.source,
                f"{config.source}: cannot connect to the database in {db_var} "
                f"({_first_line(exc)}); check the connection string, or unset {db_var} to "
                "read through the REST API.",
                transient=isinstance(exc, psycopg.OperationalError),
            ) from None
        try:
            # timestamps rendered in UTC, as Supabase's PostgREST renders them
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            conn.read_only = True
            yield cls(config, conn, db_var)
        finally:
            conn.close()

    def server_now(self) -> datetime:
        """The project's clock: its database's."""
        row = self.conn.execute("SELECT clock_timestamp()").fetchone()
        self.conn.rollback()
        assert row is not None
        return row[0]

    def describe(self) -> dict[str, TableShape]:
        """The public schema's tables, as the OpenAPI root would list them."""
        self.stats.add(requests=1)
        shapes: dict[str, TableShape] = {}
        for table, column, type_name, required, in_pk in self.conn.execute(_DESCRIBE_SQL):
            shape = shapes.setdefault(table, TableShape(table, ()))
            pk = (*shape.primary_key, column) if in_pk else shape.primary_key
            # PostgREST names types without their modifiers: numeric, not numeric(14,2)
            base = re.sub(r"\(.*?\)", "", type_name)
            columns = (*shape.columns, SourceColumn(column, base, required))
            shapes[table] = TableShape(table, columns, pk)
        self.conn.rollback()
        return shapes

    def scan(
        self, table: str, keyset: Keyset, after: dict[str, Any] | None, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """Same contract as `SupabaseProject.scan`: pages in keyset order after `after`, the
        dated rows' query, then the undated rows' (`undated_phase`)."""
        yield from self._scan_phase(table, keyset, after, columns)
        undated = undated_phase(keyset, after)
        if undated is not None:
            yield from self._scan_phase(table, keyset, undated, columns)

    def _scan_phase(
        self, table: str, keyset: Keyset, after: dict[str, Any] | None, columns: str
    ) -> Iterator[list[dict[str, Any]]]:
        order = sql.SQL(", ").join(map(sql.Identifier, keyset.columns))
        where, params = _keyset_where(keyset, after)
        selected = (
            sql.SQL("t")
            if columns == "*"
            else sql.SQL("(SELECT r FROM (SELECT {}) r)").format(
                sql.SQL(", ").join(sql.Identifier("t", c) for c in columns.split(","))
            )
        )
        query = sql.SQL("SELECT row_to_json({})::text FROM {} t {} ORDER BY {}").format(
            selected, sql.Identifier("public", table), where, order
        )
        yield from self._pages(table, query, params)

    def scan_all(
        self, table: str, keyset: Keyset, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """One cursor over the whole table: the database streams it faster than ranges would."""
        return self.scan(table, Keyset((keyset.key,), keyset.quoted), None, columns)

    def scan_range(
        self, table: str, keyset: Keyset, lo: Any, hi: Any, columns: str = "*"
    ) -> Iterator[list[dict[str, Any]]]:
        """Same contract as `SupabaseProject.scan_range`."""
        key = sql.Identifier(keyset.key)
        where, params = _range_where(key, lo, hi)
        query = sql.SQL(
            "SELECT row_to_json(t)::text FROM (SELECT {} FROM {} WHERE {}) t ORDER BY {}"
        ).format(_columns_sql(columns), sql.Identifier("public", table), where, key)
        yield from self._pages(table, query, params)

    def count(self, table: str, keyset: Keyset, lo: Any = None, hi: Any = None) -> int:
        where, params = _range_where(sql.Identifier(keyset.key), lo, hi)
        query = sql.SQL("SELECT count(*)::text FROM {} WHERE {}").format(
            sql.Identifier("public", table), where
        )
        return int(next(value for page in self._pages(table, query, params) for value in page))

    def scan_keys(
        self, table: str, keyset: Keyset, keys: Sequence[Any]
    ) -> Iterator[list[dict[str, Any]]]:
        key = sql.Identifier(keyset.key)
        query = sql.SQL("SELECT json_build_object({}, {})::text FROM {} WHERE {} = ANY(%s)").format(
            sql.Literal(keyset.key), key, sql.Identifier("public", table), key
        )
        return self._pages(table, query, [list(keys)])

    def key_digests(self, table: str, keyset: Keyset, bounds: Sequence[str]) -> Digests:
        """Same contract as `SupabaseProject.key_digests`, as one query on the database."""
        rows = self._buckets(table, keyset, lambda b, rel: b.digests_sql(rel, sql.SQL("true")),
                             [list(bounds)])  # fmt: skip
        return {b: (n, d) for b, n, d in rows}

    def bucket_keys(
        self, table: str, keyset: Keyset, bounds: Sequence[str], buckets: Sequence[int]
    ) -> set[str]:
        rows = self._buckets(table, keyset, lambda b, rel: b.keys_sql(rel, sql.SQL("true")),
                             [list(bounds), list(buckets)])  # fmt: skip
        return {str(k) for (k,) in rows}

    def _buckets(
        self,
        table: str,
        keyset: Keyset,
        query: Callable[[KeyBuckets, sql.Composable], sql.Composed],
        params: list[Any],
    ) -> list[tuple[Any, ...]]:
        self.stats.add(requests=1)
        relation = sql.Identifier("public", table)
        try:
            buckets = KeyBuckets.of(self.conn, relation.as_string(self.conn), keyset.key)
            statement = query(buckets, relation)
            return self.conn.execute(statement, params, prepare=PREPARE_BOUNDS).fetchall()
        except psycopg.Error as exc:  # e.g. a role that may read rows but not run md5
            raise DigestUnavailable(
                f"its database refused the digest ({_first_line(exc)})"
            ) from None
        finally:
            self.conn.rollback()

    def _pages(self, table: str, query: sql.Composed, params: list[Any]) -> Iterator[list[Any]]:
        self.stats.add(requests=1)
        try:
            cursor = self.conn.cursor(name=f"scan_{table}", binary=True)
            # fewer collections, as for AmoCRM's pages; not for the REST scan, where the
            # raised threshold kept httpx's garbage cycles longer: 196 → 236 MiB peak at 200k
            # rows with no CPU gain above the noise
            with fewer_collections(), cursor as cur:
                # each row's JSON text as the UTF-8 bytes it comes in, joined into one JSON
                # array per page: one parse, no decoding and re-encoding per row
                cur.adapters.register_loader("text", ByteaBinaryLoader)
                cur.itersize = self.fetch_rows
                cur.execute(query, params)
                while page := cur.fetchmany(self.fetch_rows):
                    rows = vendor_json.loads_as(b"[%b]" % b",".join(t for (t,) in page), list)
                    self.stats.add(pages=1, rows=len(rows))
                    yield rows
        except psycopg.errors.UndefinedTable:
            raise SourceError(
                self.config.source,
                f"{self.config.source}: table {table} not found in the database of {self.db_var}.",
            ) from None
        except psycopg.OperationalError as exc:
            raise SourceError(
                self.config.source,
                f"{self.config.source}: reading {table} through {self.db_var} failed "
                f"({_first_line(exc)}).",
                transient=True,
            ) from None


_DESCRIBE_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull AND NOT a.atthasdef, coalesce(a.attnum = ANY(i.indkey), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
ORDER BY c.relname, a.attnum
"""


def _keyset_where(keyset: Keyset, after: dict[str, Any] | None) -> tuple[sql.Composable, list]:
    """The REST scan's filter in SQL: ORDER BY's ascending default also sorts NULLs last."""
    if after is None:
        return sql.SQL(""), []
    key, value = sql.Identifier("t", keyset.key), after.get(keyset.key)
    if not keyset.mutable:
        return sql.SQL("WHERE {} > %s").format(key), [value]
    ts, at = sql.Identifier("t", keyset.columns[0]), after.get(keyset.columns[0])
    if at is None and value is None:
        return sql.SQL("WHERE {} IS NULL").format(ts), []
    if at is None:
        return sql.SQL("WHERE {} IS NULL AND {} > %s").format(ts, key), [value]
    if value is None:
        return sql.SQL("WHERE {} >= %s").format(ts), [at]
    return sql.SQL("WHERE ({}, {}) > (%s, %s)").format(ts, key), [at, value]


def _range_where(key: sql.Identifier, lo: Any, hi: Any) -> tuple[sql.Composed, list[Any]]:
    """`key` in (lo, hi], None meaning unbounded."""
    parts: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    if lo is not None:
        parts.append(sql.SQL("{} > %s").format(key))
        params.append(lo)
    if hi is not None:
        parts.append(sql.SQL("{} <= %s").format(key))
        params.append(hi)
    return sql.SQL(" AND ").join(parts), params


_KEY_TYPE_SQL = """
SELECT format_type(a.atttypid, a.atttypmod), t.typcollation <> 0
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


# Queries holding key bounds are planned with their values each time, never prepared: a generic
# plan casts the bounds array for every row and searches the bucket list row by row (one such
# query on the mirror took 75 s instead of 3 at 1M rows, after psycopg had prepared it)
PREPARE_BOUNDS = False


@dataclass(frozen=True)
class KeyBuckets:
    """Key buckets cut by sorted bounds (bucket i holds keys in [bounds[i-1], bounds[i]), 0 those
    below the first), as KEY_DIGEST cuts them: the direct path's source and the raw mirror run
    the same SQL, so a bucket's digest is equal on both sides exactly when its keys are."""

    key: str
    type: str  # the key column's type as format_type writes it
    collatable: bool  # text-like: sorted in byte order (COLLATE "C") on both sides

    @classmethod
    def of(cls, conn: psycopg.Connection, relation: str, key: str) -> KeyBuckets:
        row = conn.execute(_KEY_TYPE_SQL, (relation, key)).fetchone()
        if row is None:
            raise DigestUnavailable(f"{relation} has no key column {key}")
        return cls(key, row[0], row[1])

    @property
    def sorted(self) -> sql.Composable:
        column = sql.Identifier(self.key)
        return sql.SQL('{} COLLATE "C"').format(column) if self.collatable else column

    @property
    def bucket(self) -> sql.Composable:
        """The key's bucket, the bounds bound as a text[] parameter."""
        return sql.SQL("width_bucket({}, %s::text[]::{}[])").format(self.sorted, sql.SQL(self.type))

    def digests_sql(self, relation: sql.Composable, where: sql.Composable) -> sql.Composed:
        """(bucket, rows, digest) per non-empty bucket: the function's digest, an xor of the
        first 64 bits of each key's md5 (order-independent, the same in every PostgreSQL)."""
        return sql.SQL(
            "SELECT {b}, count(*), bit_xor(('x' || left(md5({k}::text), 16))::bit(64)::bigint)"
            " FROM {} WHERE {} GROUP BY 1"
        ).format(relation, where, b=self.bucket, k=sql.Identifier(self.key))

    def keys_sql(self, relation: sql.Composable, where: sql.Composable) -> sql.Composed:
        """The keys of the buckets in a second parameter (an integer array)."""
        return sql.SQL("SELECT {k} FROM {} WHERE {} AND {b} = ANY(%s)").format(
            relation, where, b=self.bucket, k=sql.Identifier(self.key)
        )


def _columns_sql(columns: str) -> sql.Composable:
    if columns == "*":
        return sql.SQL("*")
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns.split(","))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

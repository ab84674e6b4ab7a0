"""Tests for `sandbox/postgrest.py`, the simulator of one Supabase project's Data API.

What is exercised: the simulator end to end, over HTTP, through the real supabase-py 2.34 client
(postgrest-py) and, where headers and statuses matter, plain httpx. Behind it is a real
PostgreSQL (the embedded server of `resources.embedded_pg`, in its own data directory) holding a
fresh database with one 2,500-row table full of hostile strings.

What is simulated: Supabase's gateway `apikey` check (legacy JWT keys and the new sb_ keys),
PostgREST 13's JWT verification and error bodies, the OpenAPI root and who may read it, its query
language (select, filters, or/and trees, order, limit/offset, Range, quoted values on text and
uuid keys), counts and `Content-Range`, the silent max-rows cap, and faults injected through
`SimServer`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import psycopg
import pytest
from postgrest import APIError, SyncPostgrestClient
from postgrest.types import CountMethod
from psycopg.types.json import Jsonb
from supabase import Client, ClientOptions, create_client

from resources import embedded_pg
from sandbox.postgrest import create_postgrest_app, make_jwt
from sandbox.server import SimServer

DATABASE = "sandbox_postgrest_test"
TABLE = "events"
ROWS = 2500
MAX_ROWS = 1000
SECRET = "simulated-jwt-secret-with-at-least-32-characters"
PROJECT = "simproject"
BASE_TIME = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
LONG = "x" * 10_000 + "\N{PILE OF POO}"
HOSTILE = [
    'it\'s "quoted"',
    "tab\there\nnew line\r\nand CRLF",
    "back\\slash \\n not a newline \\",
    "emoji \N{GRINNING FACE}\N{ROCKET} ünïcödé 漢字",
    "comma,paren)(dot.colon:star*",
    "'; DROP TABLE events; --",
    "%_ like wildcards",
    "null",
    "",
    "  padded  ",
    "\u2028line\u2029separators",
    "</script><script>alert(1)</script>",
]

FUTURE = int(time.time()) + 3600
ANON = make_jwt(SECRET, "anon", FUTURE)
SERVICE = make_jwt(SECRET, "service_role", FUTURE)
EXPIRED = make_jwt(SECRET, "anon", int(time.time()) - 3600)
WRONG_SIGNATURE = make_jwt("another-secret-of-at-least-32-characters!!", "anon", FUTURE)
UNKNOWN_ROLE = make_jwt(SECRET, "admin", FUTURE)
NOT_A_JWT = "not-a-jwt"
PUBLISHABLE = "sb_publishable_c2ltdWxhdGVkLXB1Ymxpc2hhYmxl"
SB_SECRET = "sb_secret_c2ltdWxhdGVkLXNlY3JldC1rZXk"
API_KEYS = [
    ANON,
    SERVICE,
    EXPIRED,
    WRONG_SIGNATURE,
    UNKNOWN_ROLE,
    NOT_A_JWT,
    PUBLISHABLE,
    SB_SECRET,
]


def _row(i: int) -> dict[str, Any]:
    """Row `i`: timestamps tie in threes (for keyset on (updated_at, id)), some nulls."""
    name = LONG if i % 250 == 0 else f"{HOSTILE[i % len(HOSTILE)]} #{i}"
    return {
        "id": i,
        "updated_at": BASE_TIME + timedelta(minutes=i // 3),
        "name": name,
        "amount": f"{i * 1.25:.2f}",
        "flag": i % 2 == 0,
        "payload": {"i": i, "s": HOSTILE[i % len(HOSTILE)], "tags": ["a", None, i]},
        "note": None if i % 10 == 0 else f"note {i}",
    }


EXPECTED = {i: _row(i) for i in range(1, ROWS + 1)}


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row as PostgREST's JSON decodes in Python."""
    return {
        **row,
        "updated_at": row["updated_at"].isoformat(),
        "amount": float(row["amount"]),
    }


@pytest.fixture(scope="module")
def dsn(pg_server: str) -> Iterator[str]:
    embedded_pg.drop_database(pg_server, DATABASE)
    embedded_pg.create_database(pg_server, DATABASE)
    uri = embedded_pg.database_uri(pg_server, DATABASE)
    _load_table(uri)
    yield uri
    embedded_pg.drop_database(pg_server, DATABASE)


def _load_table(uri: str) -> None:
    columns = ["id", "updated_at", "name", "amount", "flag", "payload", "note"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL,"
            " name text, amount numeric(12, 2), flag boolean, payload jsonb, note text)"
        )
        with conn.cursor().copy(f"COPY {TABLE} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in EXPECTED.values():
                copy.write_row([Jsonb(row[c]) if c == "payload" else row[c] for c in columns])


@pytest.fixture(scope="module")
def server(dsn: str) -> Iterator[SimServer]:
    app = create_postgrest_app(
        dsn, project=PROJECT, jwt_secret=SECRET, api_keys=API_KEYS, max_rows=MAX_ROWS
    )
    with SimServer("supabase", app) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _no_faults_left(server: SimServer) -> Iterator[None]:
    yield
    server.faults.clear()


@contextmanager
def _client(server: SimServer, key: str = ANON) -> Iterator[Client]:
    with httpx.Client(timeout=10) as http_client:
        options = ClientOptions(httpx_client=http_client, postgrest_client_retry=False)
        yield create_client(server.url, key, options=options)


@pytest.fixture(scope="module")
def client(server: SimServer) -> Iterator[Client]:
    with _client(server) as supabase:
        yield supabase


@pytest.fixture(scope="module")
def http(server: SimServer) -> Iterator[httpx.Client]:
    headers = {"apikey": ANON, "Authorization": f"Bearer {ANON}"}
    with httpx.Client(base_url=f"{server.url}/rest/v1", headers=headers, timeout=10) as c:
        yield c


def _rows(response: Any) -> list[dict[str, Any]]:
    """`APIResponse.data`, typed as what a table read returns."""
    return cast(list[dict[str, Any]], response.data)


def _ids(data: Any) -> list[int]:
    return [row["id"] for row in data]


# -- pagination and the max-rows cap -------------------------------------------------------------


def test_keyset_pages_are_capped_silently_and_cover_every_row_once(client: Client) -> None:
    seen: list[int] = []
    page_sizes = []
    last = 0
    while True:
        page = client.table(TABLE).select("*").gt("id", last).order("id").limit(5000).execute()
        rows = _rows(page)
        page_sizes.append(len(rows))
        if not rows:
            break
        seen += _ids(rows)
        last = rows[-1]["id"]
    assert page_sizes == [1000, 1000, 500, 0]
    assert seen == list(range(1, ROWS + 1))


def test_or_keyset_on_updated_at_and_id_walks_ties_in_order(client: Client) -> None:
    seen: list[int] = []
    query = client.table(TABLE).select("id,updated_at").order("updated_at").order("id")
    rows = _rows(query.limit(700).execute())
    while rows:
        seen += _ids(rows)
        ts, last = rows[-1]["updated_at"], rows[-1]["id"]
        keyset = f"updated_at.gt.{ts},and(updated_at.eq.{ts},id.gt.{last})"
        query = client.table(TABLE).select("id,updated_at").or_(keyset)
        rows = _rows(query.order("updated_at").order("id").limit(700).execute())
    assert seen == sorted(EXPECTED, key=lambda i: (EXPECTED[i]["updated_at"], i))


def test_range_and_offset_are_capped_too(client: Client, http: httpx.Client) -> None:
    assert len(client.table(TABLE).select("id").range(0, 4999).execute().data) == MAX_ROWS
    params = {"select": "id", "order": "id"}
    response = http.get(f"/{TABLE}", params=params, headers={"Range": "10-2999"})
    assert response.status_code == 200
    assert response.headers["content-range"] == "10-1009/*"
    assert _ids(response.json()) == list(range(11, 1011))


# -- counts and Content-Range ---------------------------------------------------------------------


def test_exact_count(client: Client) -> None:
    everything = client.table(TABLE).select("id", count=CountMethod.exact).execute()
    assert (everything.count, len(everything.data)) == (ROWS, MAX_ROWS)
    filtered = client.table(TABLE).select("id", count=CountMethod.exact).lt("id", 101).execute()
    assert (filtered.count, len(filtered.data)) == (100, 100)
    head = (
        client.table(TABLE)
        .select("*", count=CountMethod.exact, head=True)
        .eq("flag", True)
        .execute()
    )
    assert (head.count, head.data) == (ROWS // 2, [])


@pytest.mark.parametrize(
    ("params", "headers", "status", "content_range"),
    [
        ({"limit": "10"}, {}, 200, "0-9/*"),
        ({"limit": "10"}, {"Prefer": "count=exact"}, 206, "0-9/2500"),
        ({}, {"Prefer": "count=exact"}, 206, "0-999/2500"),
        ({"id": "gt.2400"}, {"Prefer": "count=exact"}, 200, "0-99/100"),
        ({"id": "gt.9999"}, {"Prefer": "count=exact"}, 200, "*/0"),
        ({"id": "gt.9999"}, {}, 200, "*/*"),
        ({"offset": "5", "limit": "2"}, {"Range-Unit": "items", "Range": "0-99"}, 200, "5-6/*"),
    ],
)
def test_content_range_and_status_follow_postgrest(
    http: httpx.Client, params: dict, headers: dict, status: int, content_range: str
) -> None:
    response = http.get(f"/{TABLE}", params={"select": "id", **params}, headers=headers)
    assert response.status_code == status
    assert response.headers["content-range"] == content_range
    if "Range" not in headers:  # a HEAD answers the same headers with no body
        head = http.head(f"/{TABLE}", params={"select": "id", **params}, headers=headers)
        assert (head.status_code, head.headers["content-range"]) == (status, content_range)
        assert head.content == b""
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["sb-project-ref"] == PROJECT


def test_offset_past_the_count_is_416(http: httpx.Client) -> None:
    response = http.get(f"/{TABLE}", params={"offset": "3000"}, headers={"Prefer": "count=exact"})
    assert response.status_code == 416
    assert response.json() == {
        "code": "PGRST103",
        "details": "An offset of 3000 was requested, but there are only 2500 rows.",
        "hint": None,
        "message": "Requested range not satisfiable",
    }


# -- filters, select, order -----------------------------------------------------------------------


def _expect(pred: Any) -> list[int]:
    return [i for i, row in EXPECTED.items() if pred(row)]


HOSTILE_NAME = f"{HOSTILE[1]} #13"  # tab, newline and CRLF
FILTER_CASES = {
    "eq": (lambda q: q.eq("id", 7), _expect(lambda r: r["id"] == 7)),
    "neq": (lambda q: q.neq("id", 7).lt("id", 10), [1, 2, 3, 4, 5, 6, 8, 9]),
    "gt": (lambda q: q.gt("amount", "3112.50"), _expect(lambda r: float(r["amount"]) > 3112.5)),
    "gte": (lambda q: q.gte("id", 2490), _expect(lambda r: r["id"] >= 2490)),
    "lt": (
        lambda q: q.lt("updated_at", "2024-01-01T10:03:00+00:00"),
        _expect(lambda r: r["id"] < 9),
    ),
    "lte": (
        lambda q: q.lte("updated_at", "2024-01-01T11:03:00+01:00"),
        _expect(lambda r: r["id"] < 12),
    ),
    "in": (lambda q: q.in_("id", [3, 5, 2000]), [3, 5, 2000]),
    "in hostile": (
        lambda q: q.in_("name", [f"{HOSTILE[4]} #16", f"{HOSTILE[0]} #12", HOSTILE_NAME]),
        [12, 13, 16],
    ),
    "is null": (lambda q: q.is_("note", None).lt("id", 50), [10, 20, 30, 40]),
    "is true": (lambda q: q.is_("flag", True).lt("id", 7), [2, 4, 6]),
    "is false": (lambda q: q.is_("flag", False).lt("id", 7), [1, 3, 5]),
    "not is null": (lambda q: q.not_.is_("note", None).lt("id", 12), [*range(1, 10), 11]),
    "like": (lambda q: q.like("name", "%DROP TABLE%").lt("id", 40), [5, 17, 29]),
    "ilike": (lambda q: q.ilike("name", "EMOJI%").lt("id", 30), [3, 15, 27]),
    "eq hostile": (lambda q: q.eq("name", HOSTILE_NAME), [13]),
    "eq jsonb": (lambda q: q.eq("payload->>i", "42"), [42]),
    "or with nested and": (lambda q: q.or_("id.eq.1,and(id.gt.5,id.lt.8)"), [1, 6, 7]),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filter_operators(client: Client, case: str) -> None:
    build, expected = FILTER_CASES[case]
    query = build(client.table(TABLE).select("id"))
    assert _ids(query.order("id").execute().data) == expected


def test_top_level_and_with_nested_not_or(http: httpx.Client) -> None:
    params = {"select": "id", "and": "(id.lt.10,not.or(id.eq.2,id.eq.3))", "order": "id"}
    assert _ids(http.get(f"/{TABLE}", params=params).json()) == [1, 4, 5, 6, 7, 8, 9]


def test_order_desc_nullslast_and_select_renaming(client: Client) -> None:
    rows = _rows(
        client.table(TABLE)
        .select("id, ident:id::text, i:payload->i, s:payload->>s, note")
        .lte("id", 20)
        .order("note", desc=True, nullsfirst=False)
        .order("id")
        .execute()
    )
    assert rows[0] == {"id": 9, "ident": "9", "i": 9, "s": HOSTILE[9], "note": "note 9"}
    assert [r["id"] for r in rows[-2:]] == [10, 20]  # nulls last


def test_values_render_as_postgrest_json(http: httpx.Client) -> None:
    params = {"select": "id,updated_at,amount,flag,payload,note", "id": "in.(10,11)", "order": "id"}
    assert http.get(f"/{TABLE}", params=params).text == (
        '[{"id":10,"updated_at":"2024-01-01T10:03:00+00:00","amount":12.50,"flag":true,'
        '"payload":{"i": 10, "s": "\u2028line\u2029separators", "tags": ["a", null, 10]},'
        '"note":null}, \n'
        ' {"id":11,"updated_at":"2024-01-01T10:03:00+00:00","amount":13.75,"flag":false,'
        '"payload":{"i": 11, "s": "</script><script>alert(1)</script>", "tags": ["a", null, 11]},'
        '"note":"note 11"}]'
    )


def test_hostile_strings_round_trip_byte_exact(client: Client) -> None:
    rows: list[dict[str, Any]] = []
    while len(rows) < ROWS:
        last = rows[-1]["id"] if rows else 0
        rows += _rows(client.table(TABLE).select("*").gt("id", last).order("id").execute())
    assert rows == [_as_json(EXPECTED[i]) for i in range(1, ROWS + 1)]
    assert rows[249]["name"] == LONG


def test_single_object_and_its_error(client: Client) -> None:
    one = client.table(TABLE).select("id,name").eq("id", 13).single().execute()
    assert one.data == {"id": 13, "name": HOSTILE_NAME}
    with pytest.raises(APIError) as err:
        client.table(TABLE).select("id").lt("id", 3).single().execute()
    assert (err.value.code, err.value.details) == ("PGRST116", "The result contains 2 rows")


# -- errors ---------------------------------------------------------------------------------------


def _api_error(call: Any) -> APIError:
    with pytest.raises(APIError) as err:
        call()
    return err.value


def _error_fields(err: APIError) -> tuple[Any, ...]:
    return err.code, err.message, err.details, err.hint


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            make_jwt(SECRET, "anon", FUTURE + 1),  # a valid JWT, but not one of the project's keys
            (
                None,
                "Invalid API key",
                None,
                "Double check your Supabase `anon` or `service_role` API key.",
            ),
        ),
        (EXPIRED, ("PGRST303", "JWT expired", None, None)),
        (NOT_A_JWT, ("PGRST301", "Expected 3 parts in JWT; got 1", None, None)),
        (
            WRONG_SIGNATURE,
            (
                "PGRST301",
                "No suitable key or wrong key type",
                "None of the keys was able to decode the JWT",
                None,
            ),
        ),
        (UNKNOWN_ROLE, ("22023", 'role "admin" does not exist', None, None)),
    ],
    ids=["invalid key", "expired", "malformed", "wrong signature", "unknown role"],
)
def test_auth_errors(server: SimServer, key: str, expected: tuple[Any, ...]) -> None:
    with _client(server, key) as supabase:
        err = _api_error(lambda: supabase.table(TABLE).select("id").execute())
    assert _error_fields(err) == expected


def test_missing_api_key(server: SimServer) -> None:
    with httpx.Client() as http_client:
        # The bare PostgREST client: supabase-py always sends the key it was made with.
        bare = SyncPostgrestClient(f"{server.url}/rest/v1", headers={}, http_client=http_client)
        err = _api_error(lambda: bare.from_(TABLE).select("id").execute())
    assert _error_fields(err) == (
        None,
        "No API key found in request",
        None,
        "No `apikey` request header or url param was found.",
    )


def test_jwt_errors_carry_postgrest_headers(server: SimServer) -> None:
    headers = {"apikey": ANON, "Authorization": f"Bearer {EXPIRED}"}
    response = httpx.get(f"{server.url}/rest/v1/{TABLE}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="JWT expired"'
    )
    assert response.headers["proxy-status"] == "PostgREST; error=PGRST303"
    assert response.content == (
        b'{"code":"PGRST303","details":null,"hint":null,"message":"JWT expired"}'
    )


def test_service_role_key_reads(server: SimServer) -> None:
    with _client(server, SERVICE) as supabase:
        rows = supabase.table(TABLE).select("id").eq("id", 1).execute().data
    assert rows == [{"id": 1}]


def test_unknown_table_then_created_later(client: Client, dsn: str) -> None:
    err = _api_error(lambda: client.table("event").select("*").execute())
    assert _error_fields(err) == (
        "PGRST205",
        "Could not find the table 'public.event' in the schema cache",
        None,
        "Perhaps you meant the table 'public.events'",
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE later (id int)")
        conn.execute("INSERT INTO later VALUES (1)")
    assert client.table("later").select("*").execute().data == [{"id": 1}]


def test_unknown_column(client: Client) -> None:
    err = _api_error(lambda: client.table(TABLE).select("id,nope").execute())
    assert (err.code, err.message) == ("42703", f"column {TABLE}.nope does not exist")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda q: q.filter("id", "noop", "1"),
            '"failed to parse filter (noop.1)" (line 1, column 1)',
        ),
        (
            lambda q: q.or_("id.eq.1,id.gtt.2"),
            '"failed to parse logic tree (or(id.eq.1,id.gtt.2))"',
        ),
        (lambda q: q.order("id.sideways"), '"failed to parse order (id.sideways.asc)"'),
    ],
    ids=["filter", "logic tree", "order"],
)
def test_bad_syntax_is_pgrst100(client: Client, build: Any, message: str) -> None:
    err = _api_error(lambda: build(client.table(TABLE).select("id")).execute())
    assert err.code == "PGRST100"
    assert err.message is not None and err.message.startswith(message)


def test_bad_value_is_postgres_error(client: Client) -> None:
    err = _api_error(lambda: client.table(TABLE).select("id").eq("id", "abc").execute())
    assert (err.code, err.message) == ("22P02", 'invalid input syntax for type bigint: "abc"')


# -- faults and speed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "<html>upstream down</html>",
            ("503", "Service Unavailable", "<html>upstream down</html>"),
        ),
        ({"code": "PGRST002", "message": "schema cache"}, ("PGRST002", "schema cache", None)),
    ],
    ids=["html", "json"],
)
def test_injected_503(client: Client, server: SimServer, body: Any, expected: tuple) -> None:
    server.faults.add(r"/rest/v1/.*", status=503, body=body)
    before = len(server.requests)
    err = _api_error(lambda: client.table(TABLE).select("id").eq("id", 1).execute())
    assert (err.code, err.message, err.details) == expected
    assert [r.status for r in server.requests[before:]] == [503]  # retries are off
    assert client.table(TABLE).select("id").eq("id", 1).execute().data == [{"id": 1}]


# -- the new API keys and the OpenAPI root -------------------------------------------------------

SCHEMA_FORBIDDEN = {
    "message": "Access to schema is forbidden",
    "hint": "Accessing the schema via the Data API is only allowed using a secret API key.",
}


def _root(server: SimServer, key: str, bearer: str | None = None) -> httpx.Response:
    headers = {"apikey": key, "Authorization": f"Bearer {bearer or key}"}
    return httpx.get(f"{server.url}/rest/v1/", headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("key", "status"),
    [(ANON, 403), (PUBLISHABLE, 403), (SERVICE, 200), (SB_SECRET, 200)],
    ids=["anon", "publishable", "service_role", "secret"],
)
def test_given_key_when_root_read_then_only_secret_keys_get_the_openapi(
    server: SimServer, key: str, status: int
) -> None:
    response = _root(server, key)
    assert response.status_code == status
    if status == 403:
        assert response.json() == SCHEMA_FORBIDDEN
        return
    spec = response.json()
    assert (spec["swagger"], spec["basePath"], spec["info"]["version"]) == ("2.0", "/", "13.0.5")
    assert spec["produces"][0] == "application/json"
    events = spec["definitions"][TABLE]
    assert events["required"] == ["id", "updated_at"]
    assert events["properties"] == {
        "id": {
            "description": "Note:\nThis is a Primary Key.<pk/>",
            "format": "bigint",
            "type": "integer",
        },
        "updated_at": {"format": "timestamp with time zone", "type": "string"},
        "name": {"format": "text", "type": "string"},
        "amount": {"format": "numeric", "type": "number"},
        "flag": {"format": "boolean", "type": "boolean"},
        "payload": {"format": "jsonb"},
        "note": {"format": "text", "type": "string"},
    }
    get = spec["paths"][f"/{TABLE}"]["get"]
    assert get["responses"]["200"]["schema"]["items"] == {"$ref": f"#/definitions/{TABLE}"}
    assert {"$ref": f"#/parameters/rowFilter.{TABLE}.id"} in get["parameters"]


@pytest.mark.parametrize("key", [PUBLISHABLE, SB_SECRET], ids=["publishable", "secret"])
def test_given_sb_key_when_supabase_py_reads_a_table_then_it_works(
    server: SimServer, key: str
) -> None:
    with _client(server, key) as supabase:
        assert supabase.table(TABLE).select("id").eq("id", 1).execute().data == [{"id": 1}]


def test_given_wrong_sb_key_then_gateway_401(server: SimServer) -> None:
    with _client(server, "sb_secret_not-this-projects-key") as supabase:
        err = _api_error(lambda: supabase.table(TABLE).select("id").execute())
    assert _error_fields(err) == (
        None,
        "Invalid API key",
        None,
        "Double check your Supabase `anon` or `service_role` API key.",
    )


def test_given_sb_key_with_another_bearer_then_the_bearer_is_verified_as_a_jwt(
    server: SimServer,
) -> None:
    response = _root(server, SB_SECRET, bearer=EXPIRED)
    assert (response.status_code, response.json()["code"]) == (401, "PGRST303")


# -- quoted values on text and uuid keys ---------------------------------------------------------

SLUGS = ["a,b(c)", "a,b(c)z", 'q"uote', "back\\slash", "plain", "t-1", "t-10", "t-2"]
TIE = "2026-09-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def keyed_tables(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE slugs (id text PRIMARY KEY, updated_at timestamptz NOT NULL)")
        conn.execute("CREATE TABLE uuids (id uuid PRIMARY KEY)")
        for i, slug in enumerate(SLUGS):
            at = datetime.fromisoformat(TIE) + timedelta(hours=i % 3 - 1)
            conn.execute("INSERT INTO slugs VALUES (%s, %s)", (slug, at))
        for i in range(50):
            conn.execute("INSERT INTO uuids VALUES (%s)", (uuid.uuid5(uuid.NAMESPACE_URL, str(i)),))
    return dsn


def _truth(dsn: str, query: str, params: tuple[Any, ...]) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(query, params).fetchall()]


def _served_ids(http: httpx.Client, table: str, **params: str) -> list[Any]:
    response = http.get(f"/{table}", params={"select": "id", "order": "id", **params})
    assert response.status_code == 200, response.text
    return _ids(response.json())


def test_keyset_or_with_quoted_text_key(http: httpx.Client, keyed_tables: str) -> None:
    keyset = f'(updated_at.gt.{TIE},and(updated_at.eq.{TIE},id.gt."a,b(c)"))'
    expected = _truth(
        keyed_tables,
        "SELECT id FROM slugs WHERE updated_at > %s OR (updated_at = %s AND id > %s) ORDER BY id",
        (TIE, TIE, "a,b(c)"),
    )
    assert expected  # the case is not vacuous
    assert _served_ids(http, "slugs", **{"or": keyset}) == expected


def test_quoted_values_unescape_backslashes(http: httpx.Client, keyed_tables: str) -> None:
    wanted = ['q"uote', "back\\slash", "plain", "a,b(c)"]
    expected = _truth(
        keyed_tables, "SELECT id FROM slugs WHERE id = ANY(%s) ORDER BY id", (wanted,)
    )
    assert len(expected) == len(wanted)
    logic = '(id.eq."q\\"uote",id.eq."back\\\\slash",id.eq.plain,id.eq."a,b(c)")'
    assert _served_ids(http, "slugs", **{"or": logic}) == expected
    listed = 'in.("q\\"uote","back\\\\slash",plain,"a,b(c)")'
    assert _served_ids(http, "slugs", id=listed) == expected


def test_uuid_key_keyset(http: httpx.Client, keyed_tables: str) -> None:
    ids = _served_ids(http, "uuids")
    assert ids == sorted(ids, key=uuid.UUID) and len(ids) == 50
    after = _served_ids(http, "uuids", id=f"gt.{ids[20]}", limit="10")
    assert after == ids[21:31]
    tree = f"(id.gt.{ids[45]},and(id.eq.{ids[3]}))"
    assert _served_ids(http, "uuids", **{"or": tree}) == [ids[3], *ids[46:]]

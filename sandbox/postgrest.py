"""A PostgREST-compatible simulator of one Supabase project's Data API (reads only).

`create_postgrest_app(dsn, ...)` serves `GET`/`HEAD /rest/v1/{table}` for every table or view in
one schema of a real PostgreSQL database, the way a Supabase project does: the gateway's
`apikey` check (legacy JWT keys and the new `sb_publishable_`/`sb_secret_` ones), PostgREST 13's
JWT verification, the OpenAPI root `/rest/v1/` (secret keys only, as on Supabase's platform),
its query language (`select`, filters, `or`/`and`
trees, `order`, `limit`/`offset`, `Range`), `Prefer: count=...`, the silent `max-rows` cap,
`Content-Range`, and PostgREST's error bodies and headers. PostgreSQL renders the JSON itself
(`json_agg`), so values come out exactly as from the real service.

The texts follow PostgREST v13 (what Supabase runs): malformed JWT → PGRST301 "Expected 3 parts in
JWT; got 1", wrong signature → PGRST301 "No suitable key or wrong key type", expired → PGRST303.
`POST /rest/v1/rpc/{function}` calls a function of the schema with named arguments from a JSON
object (PGRST202 when none has those names), as PostgREST does, and the OpenAPI root lists the
functions under `/rpc/<name>`. `max_body_bytes` plays a proxy in front (a self-hosted project's
nginx) refusing a larger request body with its own 413 page. Not simulated: writes (they fail
like a read-only database), embedded resources, GET calls of functions, row-level security
(every valid role reads everything).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote, unquote_plus

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
OPENAPI_CONTENT_TYPE = "application/openapi+json; charset=utf-8"
POSTGREST_VERSION = "13.0.5"
# The new API keys are opaque strings told apart by prefix; the gateway gives each a role.
SB_KEY_ROLES = {"sb_publishable_": "anon", "sb_secret_": "service_role"}
OBJECT_CONTENT_TYPE = "application/vnd.pgrst.object+json; charset=utf-8"
SUPABASE_ROLES = frozenset({"anon", "authenticated", "service_role"})
JWT_CLOCK_SKEW = 30  # seconds PostgREST 13 tolerates on exp/nbf/iat
POOL_SIZE = 4
# The query string of a page of whole rows (`select=*`), for a fault aimed at pages only: a
# loader's counts and cut probes select the key column alone.
WHOLE_ROWS_QUERY = r"(^|&)select=(\*|%2A)(&|$)"
# nginx's answer to a body beyond its client_max_body_size, byte for byte
NGINX_TOO_LARGE = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

# ----------------------------------------------------------------------------------------------
# Errors


class ApiError(Exception):
    """An HTTP error answer: status, JSON body, extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self, extra: dict[str, str]) -> Response:
        headers = {**extra, **self.headers}
        return Response(orjson.dumps(self.body), self.status, headers, JSON_CONTENT_TYPE)


def pgrst_error(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    hint: Any = None,
    headers: dict[str, str] | None = None,
) -> ApiError:
    # Keys in aeson's (alphabetical) order, so bodies match PostgREST byte for byte.
    body = {"code": code, "details": details, "hint": hint, "message": message}
    return ApiError(status, body, {"Proxy-Status": f"PostgREST; error={code}", **(headers or {})})


def _gateway_error(message: str, hint: str) -> ApiError:
    # The API gateway (Kong) answers before PostgREST sees the request: no code, no details.
    return ApiError(401, {"message": message, "hint": hint})


def _schema_forbidden() -> ApiError:
    # Supabase's gateway since March 2026, word for word from its changelog ("Breaking Change:
    # Removing access to OpenAPI spec via the anon key"): the root needs a secret key.
    return ApiError(
        403,
        {
            "message": "Access to schema is forbidden",
            "hint": "Accessing the schema via the Data API is only allowed using a secret API key.",
        },
    )


def _jwt_error(code: str, message: str, details: str | None = None) -> ApiError:
    # PostgREST renders the description with Haskell's `show`, which quotes like JSON does.
    www = f'Bearer error="invalid_token", error_description={json.dumps(message)}'
    return pgrst_error(401, code, message, details, headers={"WWW-Authenticate": www})


def _pg_status(sqlstate: str, message: str) -> int:
    """PostgREST 13's SQLSTATE → HTTP status table (the part a read can reach)."""
    exact = {"23503": 409, "23505": 409, "25006": 405, "53400": 500, "57P01": 503, "P0001": 400}
    exact |= {"42883": 404, "42P01": 404, "42P17": 500, "42501": 401}
    if sqlstate in exact:
        return exact[sqlstate]
    if sqlstate == "22023" and message.startswith("role") and message.endswith("does not exist"):
        return 401
    prefixes = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500}
    prefixes |= {"38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500}
    prefixes |= {"57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500}
    return prefixes.get(sqlstate[:2], 400)


def _from_psycopg(exc: psycopg.Error) -> ApiError:
    if exc.sqlstate is None and isinstance(exc, psycopg.OperationalError):
        # No server answer: the connection itself failed.
        message = "Database connection error. Retrying the connection."
        return pgrst_error(503, "PGRST000", message, str(exc))
    if exc.sqlstate is None:
        return pgrst_error(500, "PGRSTX00", str(exc))
    diag = exc.diag
    message = diag.message_primary or str(exc)
    status = _pg_status(exc.sqlstate, message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return pgrst_error(
        status, exc.sqlstate, message, diag.message_detail, diag.message_hint, headers
    )


# ----------------------------------------------------------------------------------------------
# JWT (HS256/384/512 with the project's secret, as PostgREST verifies it)

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    # Strict: the stdlib would silently skip characters outside the alphabet.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret: str, role: str, exp: int) -> str:
    """An HS256 JWT like Supabase's `anon`/`service_role` keys."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iss": "supabase", "role": role, "iat": min(int(time.time()), exp), "exp": exp}
    signing_input = ".".join(
        _b64url_encode(json.dumps(part, separators=(",", ":")).encode())
        for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url_encode(signature)}"


def _jwt_header(encoded: str) -> dict[str, Any]:
    try:
        raw = _b64url_decode(encoded)
    except (ValueError, binascii.Error):
        raise _jwt_error("PGRST301", "JWT cryptographic operation failed") from None
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise _jwt_error("PGRST301", "JWT couldn't be decoded")
    return header


def _check_signature(parts: list[str], header: dict[str, Any], secret: str) -> None:
    digest = _HMAC_HASHES.get(header.get("alg", ""))
    try:
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        signature = b""
    if digest is not None:
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(secret.encode(), signing_input, digest).digest()
        if hmac.compare_digest(expected, signature):
            return
    raise _jwt_error(
        "PGRST301",
        "No suitable key or wrong key type",
        "None of the keys was able to decode the JWT",
    )


def _jwt_claims(encoded: str) -> dict[str, Any]:
    try:
        claims = json.loads(_b64url_decode(encoded))
    except (ValueError, binascii.Error):
        claims = None
    if not isinstance(claims, dict):
        raise _jwt_error("PGRST303", "Parsing claims failed")
    return claims


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_time_claims(claims: dict[str, Any], now: float) -> None:
    checks = (
        ("exp", lambda t: now <= t + JWT_CLOCK_SKEW, "JWT expired"),
        ("nbf", lambda t: now >= t - JWT_CLOCK_SKEW, "JWT not yet valid"),
        ("iat", lambda t: now >= t - JWT_CLOCK_SKEW, "JWT issued at future"),
    )
    for claim, valid, message in checks:
        if claim not in claims:
            continue
        if not _is_number(claims[claim]):
            raise _jwt_error("PGRST303", f"The JWT '{claim}' claim must be a number")
        if not valid(int(claims[claim])):
            raise _jwt_error("PGRST303", message)
    aud = claims.get("aud")
    aud_ok = aud is None or isinstance(aud, str)
    aud_ok = aud_ok or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    if not aud_ok:
        raise _jwt_error("PGRST303", "The JWT 'aud' claim must be a string or an array of strings")


def verify_jwt(token: str, secret: str, now: float | None = None) -> dict[str, Any]:
    """The token's claims, or the `ApiError` PostgREST 13 answers for it."""
    if token == "":
        raise _jwt_error("PGRST301", "Empty JWT is sent in Authorization header")
    parts = token.split(".")
    if len(parts) != 3:
        raise _jwt_error("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}")
    header = _jwt_header(parts[0])
    _check_signature(parts, header, secret)
    claims = _jwt_claims(parts[1])
    _check_time_claims(claims, time.time() if now is None else now)
    return claims


# ----------------------------------------------------------------------------------------------
# The query language: a small port of PostgREST's parsec grammar (QueryParams.hs)


@dataclass(frozen=True)
class Field:
    name: str
    path: tuple[tuple[str, str | int], ...] = ()  # ("->" | "->>", key or array index)


@dataclass(frozen=True)
class SelectItem:
    field: Field | None  # None: `*`
    alias: str | None = None
    cast: str | None = None


@dataclass(frozen=True)
class Filter:
    field: Field
    negate: bool
    op: str
    value: str | list[str]
    modifier: str | None = None  # `any`/`all` for quantified ops, the language for fts


@dataclass(frozen=True)
class Logic:
    negate: bool
    op: str  # "and" | "or"
    children: tuple[Filter | Logic, ...]


@dataclass(frozen=True)
class OrderTerm:
    field: Field
    direction: str | None  # "ASC" | "DESC"
    nulls: str | None  # "NULLS FIRST" | "NULLS LAST"


class _ParseFail(Exception):
    def __init__(self, pos: int, unexpected: str, expecting: str) -> None:
        super().__init__(unexpected)
        self.pos, self.unexpected, self.expecting = pos, unexpected, expecting


class _Cursor:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def accept(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, expecting: str | None = None) -> None:
        if not self.accept(token):
            self.fail(expecting or json.dumps(token))

    def take_while(self, pred: Callable[[str], bool]) -> str:
        start = self.pos
        while self.pos < len(self.text) and pred(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def skip_ws(self) -> None:
        self.take_while(lambda ch: ch in " \t")

    def at_item_end(self) -> bool:
        return self.at_end() or self.peek() in ",)"

    def fail(self, expecting: str) -> NoReturn:
        found = "end of input" if self.at_end() else json.dumps(self.peek(), ensure_ascii=False)
        raise _ParseFail(self.pos, f"unexpected {found}", expecting)


def _quoted(c: _Cursor) -> str:
    c.expect('"')
    out: list[str] = []
    while not c.at_end():
        ch = c.text[c.pos]
        c.pos += 1
        if ch == '"':
            return "".join(out)
        if ch == "\\" and not c.at_end():
            ch = c.text[c.pos]
            c.pos += 1
        out.append(ch)
    c.fail('"\\""')


def _sep_by_dash(c: _Cursor, part: Callable[[_Cursor], str]) -> str:
    # Names may contain dashes, but `->` starts a JSON path.
    pieces = [part(c)]
    while c.peek() == "-" and c.peek(2) != "->":
        c.pos += 1
        pieces.append(part(c))
    return "-".join(pieces)


def _identifier(c: _Cursor) -> str:
    word = c.take_while(lambda ch: ch.isalnum() or ch in "_ $")
    if not word.strip():
        c.fail("field name (* or [a..z0..9_$])")
    return word.strip()


def _field_name(c: _Cursor) -> str:
    return _quoted(c) if c.peek() == '"' else _sep_by_dash(c, _identifier)


def _json_key_part(c: _Cursor) -> str:
    word = c.take_while(lambda ch: ch not in "(-:.,>)")
    if not word:
        c.fail("any non reserved character different from: .,>()")
    return word.strip()


_JSON_INDEX = re.compile(r"-?\d+(?=->|::|\.|,|\Z)")


def _json_path(c: _Cursor) -> tuple[tuple[str, str | int], ...]:
    path: list[tuple[str, str | int]] = []
    while c.peek(2) == "->":
        arrow = "->>" if c.peek(3) == "->>" else "->"
        c.pos += len(arrow)
        index = _JSON_INDEX.match(c.text, c.pos)
        if index:
            c.pos = index.end()
            path.append((arrow, int(index.group())))
        elif c.peek() == '"':
            path.append((arrow, _quoted(c)))
        else:
            path.append((arrow, _sep_by_dash(c, _json_key_part)))
    return tuple(path)


def _field(c: _Cursor) -> Field:
    c.skip_ws()
    name = _field_name(c)
    path = _json_path(c)
    c.skip_ws()
    return Field(name, path)


# Operators: PostgREST name → SQL.
QUANT_OPS = {"eq": "=", "gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "like": "LIKE"}
QUANT_OPS |= {"ilike": "ILIKE", "match": "~", "imatch": "~*"}
SIMPLE_OPS = {"neq": "<>", "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<", "sr": ">>"}
SIMPLE_OPS |= {"nxr": "&<", "nxl": "&>", "adj": "-|-"}
FTS_OPS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery"}
FTS_OPS |= {"wfts": "websearch_to_tsquery"}
IS_VALUES = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE"}
IS_VALUES |= {"unknown": "UNKNOWN"}


def _quoted_element(c: _Cursor) -> str | None:
    """A quoted value, when a `,`/`)`/end follows it; else None with the cursor unmoved."""
    start = c.pos
    try:
        value = _quoted(c)
    except _ParseFail:
        value = None
    if value is not None and c.at_item_end():
        return value
    c.pos = start
    return None


def _list_value(c: _Cursor) -> list[str]:
    c.skip_ws()
    c.expect("(")
    c.skip_ws()
    items: list[str] = []
    while True:
        quoted = _quoted_element(c) if c.peek() == '"' else None
        items.append(quoted if quoted is not None else c.take_while(lambda ch: ch not in ",)"))
        if not c.accept(","):
            break
    c.skip_ws()
    c.expect(")", '"," or ")"')
    return items


def _logic_value(c: _Cursor) -> str:
    if c.peek() == '"' and (quoted := _quoted_element(c)) is not None:
        return quoted
    if c.peek() == "{":
        array = re.compile(r"\{[^{}]*\}").match(c.text, c.pos)
        if array:
            c.pos = array.end()
            return array.group()
    return c.take_while(lambda ch: ch not in ",)")


def _rest_value(c: _Cursor) -> str:
    value = c.text[c.pos :]
    c.pos = len(c.text)
    return value


def _is_value(c: _Cursor) -> str:
    for word, keyword in IS_VALUES.items():
        if c.peek(len(word)).lower() == word:
            c.pos += len(word)
            return keyword
    c.fail("isVal: (null, not_null, true, false, unknown)")


def _op_expr(c: _Cursor, field: Field, value: Callable[[_Cursor], str]) -> Filter:
    negate = c.accept("not.")
    start = c.pos
    op = c.take_while(str.isalpha)
    if op == "in" and c.accept("."):
        return Filter(field, negate, op, _list_value(c))
    if op in ("is", "isdistinct") and c.accept("."):
        return Filter(field, negate, op, _is_value(c) if op == "is" else value(c))
    modifier = None
    if op in FTS_OPS and c.accept("("):
        modifier = _identifier(c)
        c.expect(")")
    elif op in QUANT_OPS:
        modifier = "any" if c.accept("(any)") else "all" if c.accept("(all)") else None
    known = op in QUANT_OPS or op in SIMPLE_OPS or op in FTS_OPS
    if known and c.accept("."):
        return Filter(field, negate, op, value(c), modifier)
    c.pos = start
    c.fail("operator (eq, gt, ...)")


def _logic_tree(c: _Cursor) -> Filter | Logic:
    start = c.pos
    try:
        field = _field(c)
        c.expect(".", "delimiter (.)")
        return _op_expr(c, field, _logic_value)
    except _ParseFail as leaf_fail:
        c.pos = start
        try:
            return _logic_expr(c)
        except _ParseFail as expr_fail:
            # Like parsec, report the failure that got furthest.
            raise max(leaf_fail, expr_fail, key=lambda f: f.pos) from None


def _logic_expr(c: _Cursor) -> Logic:
    negate = c.accept("not.")
    op = "and" if c.accept("and") else "or" if c.accept("or") else None
    if op is None:
        c.fail("logic operator (and, or)")
    c.skip_ws()
    c.expect("(")
    children = [_logic_tree(c)]
    c.skip_ws()
    while c.accept(","):
        children.append(_logic_tree(c))
        c.skip_ws()
    c.expect(")", '"," or ")"')
    c.skip_ws()
    return Logic(negate, op, tuple(children))


def _accept_one(c: _Cursor, choices: dict[str, str]) -> str | None:
    """The value of the first token of `choices` found at the cursor, consumed."""
    return next((value for token, value in choices.items() if c.accept(token)), None)


def _order_term(c: _Cursor) -> OrderTerm:
    field = _field(c)
    direction = _accept_one(c, {".asc": "ASC", ".desc": "DESC"})
    nulls = _accept_one(c, {".nullsfirst": "NULLS FIRST", ".nullslast": "NULLS LAST"})
    c.skip_ws()
    if not (c.at_end() or c.peek() == ","):
        c.fail('"," or end of input')
    return OrderTerm(field, direction, nulls)


def _order(c: _Cursor) -> list[OrderTerm]:
    terms = [_order_term(c)]
    while c.accept(","):
        terms.append(_order_term(c))
    return terms


_AGGREGATE = re.compile(r"\.(sum|avg|count|max|min)\(\)")


def _alias(c: _Cursor) -> str | None:
    start = c.pos
    try:
        name = _field_name(c)
    except _ParseFail:
        name = None
    if name is not None and c.peek() == ":" and c.peek(2) != "::":
        c.pos += 1
        return name
    c.pos = start
    return None


class _Unsupported(Exception):
    """Valid PostgREST syntax the simulator answers with PostgREST's own refusal."""

    def __init__(self, kind: str, name: str = "") -> None:
        super().__init__(kind)
        self.kind, self.name = kind, name


def _select_item(c: _Cursor) -> SelectItem:
    c.skip_ws()
    if c.accept("..."):
        raise _Unsupported("embed", _field_name(c))
    start = c.pos
    if c.accept("*"):
        c.skip_ws()
        if c.at_item_end():
            return SelectItem(None)
        c.pos = start
    alias = _alias(c)
    if c.accept("count()"):
        raise _Unsupported("aggregate")
    field = _field(c)
    if not field.path and c.peek() in ("!", "("):
        raise _Unsupported("embed", field.name)
    cast = _identifier(c) if c.accept("::") else None
    if _AGGREGATE.match(c.text, c.pos):
        raise _Unsupported("aggregate")
    c.skip_ws()
    if not c.at_item_end():
        c.fail('"::", "," or end of input')
    return SelectItem(field, alias, cast)


def _select(c: _Cursor) -> list[SelectItem]:
    c.skip_ws()
    items: list[SelectItem] = []
    while not c.at_end():
        items.append(_select_item(c))
        c.skip_ws()
        if not c.at_end():
            c.expect(",", '"," or end of input')
    return items


def _run_parser(what: str, text: str, parse: Callable[[_Cursor], Any]) -> Any:
    """Parse, turning a failure into PostgREST's PGRST100 error."""
    cursor = _Cursor(text)
    try:
        return parse(cursor)
    except _ParseFail as fail:
        source = json.dumps(f"failed to parse {what} ({text})", ensure_ascii=False)
        message = f"{source} (line 1, column {fail.pos + 1})"
        details = f"{fail.unexpected} expecting {fail.expecting}"
        raise pgrst_error(400, "PGRST100", message, details) from None


# ----------------------------------------------------------------------------------------------
# A request, parsed


@dataclass
class ReadRequest:
    select: list[SelectItem]
    filters: list[Filter | Logic]
    order: list[OrderTerm]
    lower: int  # first row asked for (offset)
    limit: int | None  # rows asked for, max-rows applied; None = all
    count: str | None  # exact | planned | estimated
    canonical_query: str


RESERVED = frozenset({"select", "columns", "on_conflict"})
RESERVED_EMBEDDABLE = frozenset({"order", "limit", "offset", "and", "or"})
_INTEGER = re.compile(r"-?\d+")


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """(key, value) pairs; a bare `key` without `=` is dropped, as PostgREST does."""
    pairs = []
    for part in raw_query.split("&"):
        if "=" in part:
            key, _, value = part.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _not_embedded(name: str) -> ApiError:
    return pgrst_error(
        400,
        "PGRST108",
        f"'{name}' is not an embedded resource in this request",
        hint=f"Verify that '{name}' is included in the 'select' query parameter.",
    )


def _filter_param(key: str, value: str) -> Filter:
    def tree_path(c: _Cursor) -> tuple[list[str], Field]:
        names = [_field_name(c)]
        while c.accept("."):
            names.append(_field_name(c))
        return names[:-1], Field(names[-1], _json_path(c))

    embed, field = _run_parser("tree path", key, tree_path)
    if embed:
        raise _not_embedded(embed[0])
    return _run_parser("filter", value, lambda c: _op_expr(c, field, _rest_value))


def _logic_param(key: str, value: str) -> Logic | Filter:
    path = key.split(".")
    embed = [name for name in path[:-1] if name != "not"]
    if embed:
        raise _not_embedded(embed[0])
    op = f"not.{path[-1]}" if "not" in path[:-1] else path[-1]
    return _run_parser("logic tree", op + value, _logic_tree)


def _count_preference(prefer: str | None) -> str | None:
    for pref in (prefer or "").split(","):
        name, _, value = pref.strip().partition("=")
        if name == "count" and value in ("exact", "planned", "estimated"):
            return value
    return None


def _canonical(pairs: list[tuple[str, str]]) -> str:
    ordered = sorted(pairs, key=lambda kv: kv[0])
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in ordered)


def parse_read(
    pairs: list[tuple[str, str]], range_header: str | None, prefer: str | None, max_rows: int | None
) -> ReadRequest:
    select_text, order_text = "*", None
    limit = offset = None
    filters: list[Filter | Logic] = []
    for key, value in pairs:
        last = key.split(".")[-1]
        if key == "select":
            select_text = value
        elif key in RESERVED:
            continue
        elif last in ("and", "or"):
            filters.append(_logic_param(key, value))
        elif last in RESERVED_EMBEDDABLE and key != last:
            raise _not_embedded(key.split(".")[0])
        elif key == "order":
            order_text = value
        elif key in ("limit", "offset"):
            number = int(value) if _INTEGER.fullmatch(value) else None
            limit, offset = (number, offset) if key == "limit" else (limit, number)
        else:
            filters.append(_filter_param(key, value))
    select = _run_parser("select parameter", select_text, _select)
    order = _run_parser("order", order_text, _order) if order_text is not None else []
    lower, upper = _top_range(range_header, limit, offset)
    return ReadRequest(
        select=select,
        filters=filters,
        order=order,
        lower=lower,
        limit=_capped_limit(lower, upper, max_rows),
        count=_count_preference(prefer),
        canonical_query=_canonical(pairs),
    )


_RANGE = re.compile(r"([0-9]+)-([0-9]*)")


def _range_error(details: str) -> ApiError:
    return pgrst_error(416, "PGRST103", "Requested range not satisfiable", details)


def _top_range(header: str | None, limit: int | None, offset: int | None) -> tuple[int, int | None]:
    """The rows asked for, [lower, upper] inclusive: `Range` header ∩ limit/offset."""
    if limit == 0:  # PostgREST lets `limit=0` through as a valid empty range
        return offset or 0, (offset or 0) - 1
    h_lower, h_upper = 0, None
    if header and (m := _RANGE.fullmatch(header.strip())):
        h_lower, h_upper = int(m.group(1)), int(m.group(2)) if m.group(2) else None
        if h_upper is not None and h_upper < h_lower:
            raise _range_error(
                "The lower boundary must be lower than or equal to the upper boundary in the "
                "Range header."
            )
    q_lower = offset or 0
    q_upper = None if limit is None else q_lower + limit - 1
    lower = max(h_lower, q_lower)
    uppers = [u for u in (h_upper, q_upper) if u is not None]
    upper = min(uppers) if uppers else None
    if upper is not None and upper < lower:
        raise _range_error("Limit should be greater than or equal to zero.")
    return lower, upper


def _capped_limit(lower: int, upper: int | None, max_rows: int | None) -> int | None:
    asked = None if upper is None else upper - lower + 1
    if max_rows is None:
        return asked
    return max_rows if asked is None else min(asked, max_rows)


# ----------------------------------------------------------------------------------------------
# SQL


class _Params:
    """Numbered server-side parameters ($1, $2, ...): values never enter the SQL text, and a
    `%` in a column name cannot be mistaken for a client-side placeholder."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> sql.Composable:
        # Strings go out untyped ("unknown"), so PostgreSQL casts them to the column's type,
        # exactly as PostgREST does: timestamptz, numeric, bool, jsonb... all compare natively.
        self.values.append(value.replace("\x00", "") if isinstance(value, str) else value)
        return sql.SQL("$" + str(len(self.values)))


def _field_sql(field: Field, params: _Params) -> sql.Composable:
    expr: sql.Composable = sql.Identifier(field.name)
    for arrow, key in field.path:
        operand = (
            params.add(str(key)) + sql.SQL("::int") if isinstance(key, int) else params.add(key)
        )
        expr = sql.Composed([expr, sql.SQL(arrow), operand])
    return expr


def _output_name(item: SelectItem) -> str:
    assert item.field is not None
    if item.alias:
        return item.alias
    keys = [key for _, key in item.field.path if isinstance(key, str)]
    return keys[-1] if keys else item.field.name


def _select_sql(items: list[SelectItem], params: _Params) -> sql.Composable:
    parts: list[sql.Composable] = []
    for item in items:
        if item.field is None:
            parts.append(sql.SQL("*"))
            continue
        expr = _field_sql(item.field, params)
        if item.cast:
            # The grammar admits only letters, digits, `_`, `$` and spaces in a cast, as
            # PostgREST's does: a type name or a syntax error inside CAST(...), no way out.
            expr = sql.SQL("CAST({} AS {})").format(expr, sql.SQL(item.cast))
        parts.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(_output_name(item))))
    return sql.SQL(", ").join(parts)


def _array_literal(values: list[str]) -> str:
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in escaped) + "}"


def _filter_sql(flt: Filter, params: _Params) -> sql.Composable:
    target = _field_sql(flt.field, params)
    value = flt.value
    cond: sql.Composable
    if flt.op == "in":
        assert isinstance(value, list)
        literal = "{}" if value == [""] else _array_literal(value)
        cond = sql.SQL("{} = ANY({})").format(target, params.add(literal))
    elif flt.op == "is":
        # `value` is one of IS_VALUES' keywords: `IS` takes no parameter.
        cond = sql.SQL("{} IS {}").format(target, sql.SQL(str(value)))
    elif flt.op == "isdistinct":
        cond = sql.SQL("{} IS DISTINCT FROM {}").format(target, params.add(value))
    elif flt.op in FTS_OPS:
        lang = [params.add(flt.modifier)] if flt.modifier else []
        call = sql.SQL("{}({})").format(
            sql.SQL(FTS_OPS[flt.op]), sql.SQL(", ").join([*lang, params.add(value)])
        )
        cond = sql.SQL("{} @@ {}").format(target, call)
    else:
        cond = _comparison_sql(flt, target, params)
    return sql.SQL("NOT ({})").format(cond) if flt.negate else cond


def _comparison_sql(flt: Filter, target: sql.Composable, params: _Params) -> sql.Composable:
    value = str(flt.value)
    if flt.op in ("like", "ilike"):
        value = value.replace("*", "%")  # PostgREST's URL-friendly wildcard
    operand = params.add(value)
    if flt.modifier:
        operand = sql.SQL("{}({})").format(sql.SQL(flt.modifier.upper()), operand)
    symbol = QUANT_OPS.get(flt.op) or SIMPLE_OPS[flt.op]
    return sql.SQL("{} {} {}").format(target, sql.SQL(symbol), operand)


def _condition_sql(node: Filter | Logic, params: _Params) -> sql.Composable:
    if isinstance(node, Filter):
        return _filter_sql(node, params)
    joiner = sql.SQL(" AND ") if node.op == "and" else sql.SQL(" OR ")
    inner = sql.SQL("({})").format(joiner.join(_condition_sql(ch, params) for ch in node.children))
    return sql.SQL("NOT {}").format(inner) if node.negate else inner


def _where_sql(filters: list[Filter | Logic], params: _Params) -> sql.Composable:
    if not filters:
        return sql.SQL("")
    conditions = sql.SQL(" AND ").join(_condition_sql(node, params) for node in filters)
    return sql.SQL(" WHERE {}").format(conditions)


def _order_sql(terms: list[OrderTerm], params: _Params) -> sql.Composable:
    if not terms:
        return sql.SQL("")
    parts = []
    for term in terms:
        words = " ".join(w for w in (term.direction, term.nulls) if w)
        parts.append(sql.SQL("{} {}").format(_field_sql(term.field, params), sql.SQL(words)))
    return sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(parts))


# ----------------------------------------------------------------------------------------------
# Connections and the schema cache


class ConnectionPool:
    """A few autocommit connections, bound to the event loop that uses them.

    Connections belong to one event loop; the server runs its own loop in a thread, so the pool
    starts lazily inside it and closes its connections when that loop shuts down.
    """

    def __init__(self, dsn: str, size: int = POOL_SIZE) -> None:
        self._dsn = dsn
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)
        self._janitor: asyncio.Task[None] | None = None

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop, self._idle, self._slots = loop, [], asyncio.Semaphore(self._size)
        self._janitor = loop.create_task(self._close_at_shutdown(self._idle))

    @staticmethod
    async def _close_at_shutdown(idle: list[psycopg.AsyncConnection[Any]]) -> None:
        try:
            await asyncio.Event().wait()
        finally:  # the loop's shutdown cancels this task
            for conn in idle:
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, cursor_factory=psycopg.AsyncRawCursor
        )
        # Supabase databases run in UTC, and PostgreSQL's JSON shows timestamptz in the session
        # zone; read-only because the simulator only reads.
        await conn.execute(
            "SELECT set_config('TimeZone', 'UTC', false),"
            " set_config('default_transaction_read_only', 'on', false)"
        )
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        self._bind()
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                healthy = not (conn.closed or conn.broken)
                if healthy and conn.info.transaction_status == TransactionStatus.IDLE:
                    self._idle.append(conn)
                else:
                    await conn.close()


_COLUMNS_SQL = """
SELECT c.relname, coalesce(array_agg(a.attname ORDER BY a.attnum)
                           FILTER (WHERE a.attname IS NOT NULL), '{}')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
GROUP BY c.relname
"""


class SchemaCache:
    """Tables and their columns in one schema, reloaded whenever a name is not found."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._tables: dict[str, frozenset[str]] = {}

    async def reload(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # pg_catalog rather than information_schema: it also lists materialized views, as
        # PostgREST does, and is much faster.
        cur = await conn.execute(_COLUMNS_SQL, [self.schema])
        self._tables = {name: frozenset(cols) for name, cols in await cur.fetchall()}

    def forget(self, table: str) -> None:
        self._tables.pop(table, None)

    def invalidate(self) -> None:
        """Forget everything (after DDL): the next request reloads, like `NOTIFY pgrst`."""
        self._tables = {}

    async def columns(self, conn: psycopg.AsyncConnection[Any], table: str) -> frozenset[str]:
        if table not in self._tables:
            await self.reload(conn)
        if table not in self._tables:
            raise self._not_found(table)
        return self._tables[table]

    async def refreshed_columns(
        self, conn: psycopg.AsyncConnection[Any], table: str
    ) -> frozenset[str]:
        await self.reload(conn)
        return await self.columns(conn, table)

    def _not_found(self, table: str) -> ApiError:
        close = difflib.get_close_matches(table, list(self._tables), n=1, cutoff=0.6)
        hint = f"Perhaps you meant the table '{self.schema}.{close[0]}'" if close else None
        message = f"Could not find the table '{self.schema}.{table}' in the schema cache"
        return pgrst_error(404, "PGRST205", message, hint=hint)


def _fields_of(read: ReadRequest) -> set[str]:
    names = {item.field.name for item in read.select if item.field is not None}
    names |= {term.field.name for term in read.order}
    stack: list[Filter | Logic] = list(read.filters)
    while stack:
        node = stack.pop()
        if isinstance(node, Filter):
            names.add(node.field.name)
        else:
            stack.extend(node.children)
    return names


# ----------------------------------------------------------------------------------------------
# The OpenAPI root: PostgREST 13's Swagger 2.0 document (Response/OpenAPI.hs), from the catalog

# PostgREST's schema-cache column query (SchemaCache.hs, v13): a pg_catalog type by its plain
# `format_type` name ("numeric", not "numeric(14,2)"), any other by its modified one; run with an
# empty search_path, as PostgREST's own session has it, so user types come schema-qualified
# ("public.sale_channel"). Defaults as `pg_get_expr` prints them.
_OPENAPI_SQL = """
WITH cols AS (
    SELECT a.attrelid, a.attnum, a.attname,
           col_description(a.attrelid, a.attnum) AS description,
           NOT (a.attnotnull OR t.typtype = 'd' AND t.typnotnull) AS nullable,
           CASE WHEN t.typtype = 'd' THEN
                CASE WHEN bt.typnamespace = 'pg_catalog'::regnamespace
                     THEN format_type(t.typbasetype, NULL) ELSE format_type(a.atttypid, a.atttypmod)
                END
                WHEN t.typnamespace = 'pg_catalog'::regnamespace
                THEN format_type(a.atttypid, NULL)
                ELSE format_type(a.atttypid, a.atttypmod)
           END AS type,
           CASE WHEN t.typbasetype <> 0 AND ad.adbin IS NULL THEN pg_get_expr(t.typdefaultbin, 0)
                WHEN a.attgenerated = 's' THEN NULL
                ELSE pg_get_expr(ad.adbin, ad.adrelid)
           END AS "default",
           information_schema._pg_char_max_length(
               information_schema._pg_truetypid(a.*, t.*),
               information_schema._pg_truetypmod(a.*, t.*)) AS max_length,
           (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = coalesce(bt.oid, t.oid)) AS enum
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
)
SELECT c.relname,
       obj_description(c.oid, 'pg_class'),
       pg_catalog.pg_relation_is_updatable(c.oid, true) & 28 <> 0,
       coalesce((SELECT json_agg(json_build_object(
                    'name', cols.attname, 'description', cols.description,
                    'nullable', cols.nullable, 'type', cols.type, 'default', cols."default",
                    'max_length', cols.max_length, 'enum', cols.enum) ORDER BY cols.attnum)
                 FROM cols WHERE cols.attrelid = c.oid), '[]'),
       coalesce((SELECT array_agg(a.attname::text) FROM pg_catalog.pg_constraint k
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(k.conkey)
                 WHERE k.conrelid = c.oid AND k.contype = 'p'), '{}'),
       coalesce((SELECT json_object_agg(a.attname, json_build_array(fc.relname, fa.attname))
                 FROM pg_catalog.pg_constraint k
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
                 JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
                 JOIN pg_catalog.pg_attribute fa
                   ON fa.attrelid = k.confrelid AND fa.attnum = k.confkey[1]
                 WHERE k.conrelid = c.oid AND k.contype = 'f'
                   AND cardinality(k.conkey) = 1), '{}')
FROM pg_catalog.pg_class c
WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
ORDER BY c.relname
"""
_NUMERIC = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
_SWAGGER_TYPES: dict[str, str | None] = {
    "character varying": "string",
    "character": "string",
    "text": "string",
}
_SWAGGER_TYPES |= {"boolean": "boolean", "json": None, "jsonb": None}
_SWAGGER_TYPES |= {t: "integer" for t in _NUMERIC[:3]} | {t: "number" for t in _NUMERIC[3:]}
_MIME_TYPES = [
    "application/json",
    "application/vnd.pgrst.object+json;nulls=stripped",
    "application/vnd.pgrst.object+json",
    "text/csv",
]
_PREFER = {
    "preferParams": [],
    "preferReturn": ["return=representation", "return=minimal", "return=none"],
    "preferCount": ["count=none"],
    "preferPost": [
        "return=representation",
        "return=minimal",
        "return=none",
        "resolution=ignore-duplicates",
        "resolution=merge-duplicates",
    ],
}
# (definition name, parameter name, description, where) of PostgREST's shared parameters
_SHARED_PARAMS = (
    ("select", "select", "Filtering Columns", "query"),
    ("on_conflict", "on_conflict", "On Conflict", "query"),
    ("order", "order", "Ordering", "query"),
    ("range", "Range", "Limiting and Pagination", "header"),
    ("rangeUnit", "Range-Unit", "Limiting and Pagination", "header"),
    ("offset", "offset", "Limiting and Pagination", "query"),
    ("limit", "limit", "Limiting and Pagination", "query"),
)
_GET_PARAMS = ("select", "order", "range", "rangeUnit", "offset", "limit", "preferCount")
_NO_DEFAULT = object()


def swagger_type(pg_type: str) -> str | None:
    """`toSwaggerType`: None (no `type`) for json/jsonb, arrays by their `[]`, else string."""
    if pg_type in _SWAGGER_TYPES:
        return _SWAGGER_TYPES[pg_type]
    return "array" if pg_type.endswith("[]") else "string"


def _swagger_default(pg_type: str, default: str | None) -> Any:
    """`parseDefault`: a string type's default loses its `::type` cast and quotes; the result is
    kept only if it parses as JSON (so `nextval(...)` on a bigint gives none)."""
    if default is None:
        return _NO_DEFAULT
    text = default
    if swagger_type(pg_type) == "string":
        suffix = f"::{pg_type}"
        text = '"' + (text.removesuffix(suffix).strip("'") if text.endswith(suffix) else text) + '"'
    try:
        return json.loads(text)
    except ValueError:
        return _NO_DEFAULT


def _property(column: dict[str, Any], pk: bool, fk: tuple[str, str] | None) -> dict[str, Any]:
    pg_type = column["type"]
    notes = ["Note:"]
    if pk:
        notes.append("This is a Primary Key.<pk/>")
    if fk:
        notes.append(
            f"This is a Foreign Key to `{fk[0]}.{fk[1]}`.<fk table='{fk[0]}' column='{fk[1]}'/>"
        )
    description = column["description"]
    if len(notes) > 1:
        description = (f"{description}\n\n" if description else "") + "\n".join(notes)
    prop: dict[str, Any] = {}
    if (default := _swagger_default(pg_type, column["default"])) is not _NO_DEFAULT:
        prop["default"] = default
    if description is not None:
        prop["description"] = description
    if column["enum"]:
        prop["enum"] = column["enum"]
    prop["format"] = pg_type
    if column["max_length"] is not None:
        prop["maxLength"] = column["max_length"]
    if (kind := swagger_type(pg_type)) is not None:
        prop["type"] = kind
    if kind == "array":
        item_type = swagger_type(pg_type[:-2])
        prop["items"] = {"type": item_type} if item_type is not None else {}
    return prop


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/{kind}/{name}"}


def _path_item(table: str, description: str | None, columns: list[str], writable: bool) -> Any:
    summary, _, rest = (description or "").partition("\n")
    base: dict[str, Any] = {"tags": [table]}
    if description is not None:
        base["summary"] = summary
        if rest.lstrip("\n"):
            base["description"] = rest.lstrip("\n")
    filters = [_ref("parameters", f"rowFilter.{table}.{c}") for c in columns]
    item: dict[str, Any] = {
        "get": base
        | {
            "parameters": filters + [_ref("parameters", p) for p in _GET_PARAMS],
            "responses": {
                "200": {
                    "description": "OK",
                    "schema": {"type": "array", "items": _ref("definitions", table)},
                },
                "206": {"description": "Partial Content"},
            },
        }
    }
    if writable:
        body = _ref("parameters", f"body.{table}")
        item["post"] = base | {
            "parameters": [body, _ref("parameters", "select"), _ref("parameters", "preferPost")],
            "responses": {"201": {"description": "Created"}},
        }
        item["delete"] = base | {
            "parameters": [*filters, _ref("parameters", "preferReturn")],
            "responses": {"204": {"description": "No Content"}},
        }
        item["patch"] = base | {
            "parameters": [*filters, body, _ref("parameters", "preferReturn")],
            "responses": {"204": {"description": "No Content"}},
        }
    return item


def _shared_parameters() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, values in _PREFER.items():
        param: dict[str, Any] = {"name": "Prefer", "description": "Preference", "required": False}
        param |= {"in": "header", "type": "string"}
        params[name] = param | ({"enum": values} if values else {})
    for key, name, description, where in _SHARED_PARAMS:
        param = {"name": name, "description": description, "required": False, "in": where}
        params[key] = (
            param | {"type": "string"} | ({"default": "items"} if key == "rangeUnit" else {})
        )
    return params


# The schema's functions and their named arguments (name, type), as PostgREST's schema cache
# holds them: a call names every argument that has no default.
_FUNCTIONS_SQL = """
SELECT p.proname, p.oid::regprocedure::text, coalesce(array_agg(a.name ORDER BY a.n)
       FILTER (WHERE a.name IS NOT NULL), '{}'), coalesce(array_agg(format_type(a.type, NULL)
       ORDER BY a.n) FILTER (WHERE a.name IS NOT NULL), '{}'), p.pronargdefaults
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
LEFT JOIN LATERAL unnest(p.proargnames, p.proargtypes::oid[]) WITH ORDINALITY AS a(name, type, n)
       ON true
WHERE ns.nspname = $1 AND p.prokind = 'f'
GROUP BY p.oid, p.proname, p.pronargdefaults
"""


@dataclass(frozen=True)
class _Function:
    name: str
    arguments: tuple[tuple[str, str], ...]  # (name, type), in order
    defaults: int  # the last this many arguments may be left out

    def accepts(self, given: set[str]) -> bool:
        names = [n for n, _ in self.arguments]
        return set(names[: len(names) - self.defaults]) <= given <= set(names)


async def _functions(conn: psycopg.AsyncConnection[Any], schema: str) -> list[_Function]:
    cur = await conn.execute(_FUNCTIONS_SQL, [schema])
    return [_Function(name, tuple(zip(names, types, strict=True)), defaults)
            for name, _, names, types, defaults in await cur.fetchall()]  # fmt: skip


def _rpc_path_item(function: _Function) -> dict[str, Any]:
    properties = {n: {"format": t, "type": swagger_type(t) or "string"}
                  for n, t in function.arguments}  # fmt: skip
    required = [n for n, _ in function.arguments[: len(function.arguments) - function.defaults]]
    schema = {"properties": properties, "required": required, "type": "object"}
    body = {"in": "body", "name": "args", "required": True, "schema": schema}
    post = {"tags": [f"(rpc) {function.name}"], "produces": _MIME_TYPES, "parameters": [body]}
    return {"post": post | {"responses": {"200": {"description": "OK"}}}}


async def openapi(conn: psycopg.AsyncConnection[Any], schema: str, host: str) -> dict[str, Any]:
    """The document PostgREST 13 serves at its root for `schema`, built from the catalog now
    (so DDL shows at once, as Supabase's schema-reload trigger makes it)."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('search_path', '', true)")
        cur = await conn.execute(_OPENAPI_SQL, [schema])
        tables = await cur.fetchall()
        cur = await conn.execute(
            "SELECT obj_description($1::regnamespace, 'pg_namespace')", [schema]
        )
        (schema_description,) = await cur.fetchone()  # type: ignore[misc]
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "tags": ["Introspection"],
                "summary": "OpenAPI description (this document)",
                "produces": ["application/openapi+json", "application/json"],
                "responses": {"200": {"description": "OK"}},
            }
        }
    }
    parameters = _shared_parameters()
    for name, description, writable, columns, pk_cols, fks in tables:
        properties = {
            c["name"]: _property(c, c["name"] in pk_cols, fks.get(c["name"])) for c in columns
        }
        definition: dict[str, Any] = {} if description is None else {"description": description}
        definitions[name] = definition | {
            "required": [c["name"] for c in columns if not c["nullable"]],
            "properties": properties,
            "type": "object",
        }
        paths[f"/{name}"] = _path_item(name, description, [c["name"] for c in columns], writable)
        parameters[f"body.{name}"] = {
            "name": name,
            "description": name,
            "required": False,
            "in": "body",
            "schema": _ref("definitions", name),
        }
        for c in columns:
            row_filter = {"name": c["name"]}
            row_filter |= {"description": c["description"]} if c["description"] else {}
            parameters[f"rowFilter.{name}.{c['name']}"] = row_filter | {
                "required": False,
                "in": "query",
                "type": "string",
            }
    for function in await _functions(conn, schema):
        paths[f"/rpc/{function.name}"] = _rpc_path_item(function)
    title, _, rest = (schema_description or "").partition("\n")
    info = {
        "description": rest.lstrip("\n")
        if schema_description
        else "This is a dynamic API generated by PostgREST",
        "title": title if schema_description else "PostgREST API",
        "version": POSTGREST_VERSION,
    }
    return {
        "swagger": "2.0",
        "info": info,
        "host": host,
        "basePath": "/",
        "schemes": ["http"],
        "consumes": _MIME_TYPES,
        "produces": _MIME_TYPES,
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
        "externalDocs": {
            "description": "PostgREST Documentation",
            "url": f"https://postgrest.org/en/v{POSTGREST_VERSION.split('.')[0]}/references/api.html",
        },
    }


# ----------------------------------------------------------------------------------------------
# The service


@dataclass(frozen=True)
class _Result:
    total: int | None
    rows: int
    body: str


class PostgrestSimulator:
    def __init__(
        self,
        dsn: str,
        *,
        project: str,
        jwt_secret: str,
        api_keys: Iterable[str],
        max_rows: int | None,
        schema: str,
    ) -> None:
        self.project = project
        self.jwt_secret = jwt_secret
        self.api_keys = frozenset(api_keys)
        self.max_rows = max_rows
        self.pool = ConnectionPool(dsn)
        self.cache = SchemaCache(schema)
        self.max_body_bytes: int | None = None  # a proxy's limit in front; None: none

    def gateway_headers(self) -> dict[str, str]:
        return {
            "sb-gateway-version": "1",
            "sb-project-ref": self.project,
            "sb-request-id": str(uuid.uuid4()),
        }

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as err:
            return err.response(self.gateway_headers())

    async def root(self, request: Request) -> Response:
        try:
            if self._role(request) != "service_role":
                raise _schema_forbidden()
            self._check_profile(request.headers.get("accept-profile"))
            async with self.pool.connection() as conn:
                spec = await openapi(conn, self.cache.schema, request.headers.get("host", ""))
        except ApiError as err:
            return err.response(self.gateway_headers())
        except psycopg.Error as exc:
            return _from_psycopg(exc).response(self.gateway_headers())
        body = b"" if request.method == "HEAD" else orjson.dumps(spec)
        return Response(body, 200, self.gateway_headers(), OPENAPI_CONTENT_TYPE)

    async def rpc(self, request: Request) -> Response:
        """A function called with named arguments; its value is the body, as PostgREST answers
        a function returning a scalar."""
        sent = await request.body()
        if self.max_body_bytes is not None and len(sent) > self.max_body_bytes:
            return Response(NGINX_TOO_LARGE, 413, media_type="text/html")
        try:
            self._role(request)
            negotiated = self._check_profile(request.headers.get("content-profile"))
            arguments = _json_object(sent)
            async with self.pool.connection() as conn:
                body = await self._call(conn, request.path_params["function"], arguments)
        except ApiError as err:
            return err.response(self.gateway_headers())
        except psycopg.Error as exc:
            return _from_psycopg(exc).response(self.gateway_headers())
        headers = self.gateway_headers()
        if negotiated:
            headers["Content-Profile"] = self.cache.schema
        return Response(body.encode(), 200, headers, JSON_CONTENT_TYPE)

    async def _call(
        self, conn: psycopg.AsyncConnection[Any], name: str, arguments: dict[str, Any]
    ) -> str:
        schema, given = self.cache.schema, set(arguments)
        matches = [f for f in await _functions(conn, schema) if f.name == name]
        function = next((f for f in matches if f.accepts(given)), None)
        if function is None:
            listed = ", ".join(sorted(given))
            raise pgrst_error(
                404,
                "PGRST202",
                f"Could not find the function {schema}.{name}({listed}) in the schema cache",
                f"Searched for the function {schema}.{name} with parameters {listed} or with a "
                "single unnamed json/jsonb parameter, but no matches were found in the schema "
                "cache.",
            )
        used = [(n, t) for n, t in function.arguments if n in given]
        # the arguments' types are the catalog's; the values come from the body, bound
        call = sql.SQL("SELECT to_json({}({}))::text FROM json_to_record($1::json) r({})").format(
            sql.Identifier(schema, name),
            sql.SQL(", ").join(sql.SQL("{} := r.{}").format(sql.Identifier(n), sql.Identifier(n))
                               for n, _ in used),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                               for n, t in used),
        )  # fmt: skip
        cur = await conn.execute(call, [orjson.dumps(arguments).decode()])
        (body,) = await cur.fetchone()  # type: ignore[misc]
        return body

    def _role(self, request: Request) -> str:
        """The role a request runs as: an sb_ key's own (the gateway swaps it for a JWT of that
        role when it comes alone or also as the bearer, as supabase-py sends it), else the
        bearer JWT's."""
        key = self._check_api_key(request)
        authorization = request.headers.get("authorization")
        scheme, _, token = (authorization or "").strip().partition(" ")
        sb_role = next((r for p, r in SB_KEY_ROLES.items() if key.startswith(p)), None)
        if sb_role is not None and (scheme.lower() != "bearer" or token.strip() == key):
            return sb_role
        return self._authenticate(authorization)

    async def _handle(self, request: Request) -> Response:
        self._role(request)
        if request.method not in ("GET", "HEAD"):
            verb = {"POST": "INSERT", "PUT": "INSERT", "PATCH": "UPDATE"}.get(request.method)
            message = f"cannot execute {verb or 'DELETE'} in a read-only transaction"
            raise pgrst_error(405, "25006", message)
        negotiated = self._check_profile(request.headers.get("accept-profile"))
        media = _negotiate(request.headers.get("accept"))
        table = request.path_params["table"]
        # The gateway hides the key (`hide_credentials`), so it never reads as a filter.
        pairs = [kv for kv in query_pairs(request.url.query) if kv[0] != "apikey"]
        # RFC 9110: the Range header only applies to GET.
        range_header = request.headers.get("range") if request.method == "GET" else None
        prefer = request.headers.get("prefer")
        read = _parse_or_refuse(
            table, self.cache.schema, pairs, range_header, prefer, self.max_rows
        )
        result = await self._query(table, read, media)
        return self._respond(request.method, table, read, media, result, negotiated)

    def _check_api_key(self, request: Request) -> str:
        key = request.headers.get("apikey") or request.query_params.get("apikey")
        if not key:
            raise _gateway_error(
                "No API key found in request", "No `apikey` request header or url param was found."
            )
        if key not in self.api_keys:
            raise _gateway_error(
                "Invalid API key", "Double check your Supabase `anon` or `service_role` API key."
            )
        return key

    def _authenticate(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return "anon"  # no bearer token: PostgREST's anonymous role
        claims = verify_jwt(token.strip(), self.jwt_secret)
        role = claims.get("role", "anon")
        if not isinstance(role, str) or role not in SUPABASE_ROLES:
            # Row-level security is not simulated, but a role the database lacks still fails.
            name = role if isinstance(role, str) else json.dumps(role)
            message = f'role "{name}" does not exist'
            raise pgrst_error(401, "22023", message, headers={"WWW-Authenticate": "Bearer"})
        return role

    def _check_profile(self, profile: str | None) -> bool:
        if profile is None:
            return False
        if profile != self.cache.schema:
            raise pgrst_error(
                406,
                "PGRST106",
                f"Invalid schema: {profile}",
                hint=f"Only the following schemas are exposed: {self.cache.schema}",
            )
        return True

    async def _query(self, table: str, read: ReadRequest, media: str) -> _Result:
        try:
            async with self.pool.connection() as conn:
                columns = await self.cache.columns(conn, table)
                if not _fields_of(read) <= columns:
                    columns = await self.cache.refreshed_columns(conn, table)
                    await self._reject_unknown_columns(conn, table, _fields_of(read) - columns)
                return await self._execute(conn, table, read, media)
        except psycopg.Error as exc:
            if exc.sqlstate == "42P01":  # dropped since cached: the next request says 404
                self.cache.forget(table)
            raise _from_psycopg(exc) from exc

    async def _reject_unknown_columns(
        self, conn: psycopg.AsyncConnection[Any], table: str, unknown: set[str]
    ) -> None:
        """Let PostgreSQL word the error (with its "Perhaps you meant..." hint), as it does
        behind the real PostgREST, by referencing the column the way PostgREST would."""
        if not unknown:
            return
        rel = sql.Identifier(self.cache.schema, table)
        column = sql.Identifier(self.cache.schema, table, sorted(unknown)[0])
        await conn.execute(sql.SQL("SELECT {} FROM {} LIMIT 0").format(column, rel))
        raise pgrst_error(400, "42703", f"column {table}.{sorted(unknown)[0]} does not exist")

    async def _execute(
        self, conn: psycopg.AsyncConnection[Any], table: str, read: ReadRequest, media: str
    ) -> _Result:
        params = _Params()
        rel = sql.Identifier(self.cache.schema, table)
        where = _where_sql(read.filters, params)
        total = await self._count_sql(conn, read, rel, where, params)
        query = sql.SQL(
            "SELECT {total}, count(*), {body} FROM"
            " (SELECT {cols} FROM {rel}{where}{order} LIMIT {limit} OFFSET {offset}) pgrst_t"
        ).format(
            total=total,
            body=_body_sql(media),
            cols=_select_sql(read.select, params),
            rel=rel,
            where=where,
            order=_order_sql(read.order, params),
            limit=params.add(read.limit),
            offset=params.add(read.lower),
        )
        cur = await conn.execute(query, params.values)
        count, rows, body = await cur.fetchone()  # type: ignore[misc]
        return _Result(count, rows, body)

    async def _count_sql(
        self,
        conn: psycopg.AsyncConnection[Any],
        read: ReadRequest,
        rel: sql.Composable,
        where: sql.Composable,
        params: _Params,
    ) -> sql.Composable:
        if read.count == "exact":
            return sql.SQL("(SELECT count(*) FROM {}{})").format(rel, where)
        if read.count is None:
            return sql.SQL("NULL::bigint")
        planned = await _planned_rows(conn, rel, where, params)
        if read.count == "planned" or self.max_rows is None:
            return params.add(planned) + sql.SQL("::bigint")
        # "estimated": exact up to max-rows, the planner's guess beyond, like PostgREST.
        probe = sql.SQL("(SELECT count(*) FROM (SELECT 1 FROM {}{} LIMIT {}) pgrst_c)").format(
            rel, where, params.add(self.max_rows + 1)
        )
        return sql.SQL(
            "(SELECT CASE WHEN n > {} THEN greatest(n, {}) ELSE n END FROM {} c(n))"
        ).format(params.add(self.max_rows), params.add(planned), probe)

    def _respond(
        self,
        method: str,
        table: str,
        read: ReadRequest,
        media: str,
        result: _Result,
        negotiated: bool,
    ) -> Response:
        if media == "object" and result.rows != 1:
            raise pgrst_error(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {result.rows} rows",
            )
        if result.total is not None and read.lower > result.total:
            raise _range_error(
                f"An offset of {read.lower} was requested, but there are only {result.total} rows."
            )
        headers = self.gateway_headers()
        headers["Content-Range"] = content_range(read.lower, result.rows, result.total)
        location = f"/{quote(table)}" + (f"?{read.canonical_query}" if read.canonical_query else "")
        headers["Content-Location"] = location
        if negotiated:
            headers["Content-Profile"] = self.cache.schema
        if read.count:
            headers["Preference-Applied"] = f"count={read.count}"
        partial = result.total is not None and result.rows < result.total
        body = b"" if method == "HEAD" else result.body.encode()
        content_type = OBJECT_CONTENT_TYPE if media == "object" else JSON_CONTENT_TYPE
        return Response(body, 206 if partial else 200, headers, content_type)


def _parse_or_refuse(
    table: str,
    schema: str,
    pairs: list[tuple[str, str]],
    range_header: str | None,
    prefer: str | None,
    max_rows: int | None,
) -> ReadRequest:
    try:
        return parse_read(pairs, range_header, prefer, max_rows)
    except _Unsupported as unsupported:
        if unsupported.kind == "aggregate":
            raise pgrst_error(
                400, "PGRST123", "Use of aggregate functions is not allowed"
            ) from None
        name = unsupported.name
        raise pgrst_error(
            400,
            "PGRST200",
            f"Could not find a relationship between '{table}' and '{name}' in the schema cache",
            f"Searched for a foreign key relationship between '{table}' and '{name}' in the "
            f"schema '{schema}', but no matches were found.",
        ) from None


async def _planned_rows(
    conn: psycopg.AsyncConnection[Any], rel: sql.Composable, where: sql.Composable, params: _Params
) -> int:
    explain = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {}{}").format(rel, where)
    cur = await conn.execute(explain, params.values)
    plan = (await cur.fetchone())[0]  # type: ignore[index]
    return int(plan[0]["Plan"]["Plan Rows"])


def _body_sql(media: str) -> sql.Composable:
    if media == "object":
        return sql.SQL("coalesce(json_agg(pgrst_t)->0, 'null')::text")
    if media == "stripped":
        return sql.SQL("coalesce(json_strip_nulls(json_agg(pgrst_t)), '[]')::text")
    return sql.SQL("coalesce(json_agg(pgrst_t), '[]')::text")


def _negotiate(accept: str | None) -> str:
    """json | stripped | object, from the Accept header; anything else is PGRST107."""
    if not accept:
        return "json"
    requested = []
    for part in accept.split(","):
        media_type, *params = (p.strip().lower() for p in part.split(";"))
        stripped = "nulls=stripped" in params
        if media_type in ("*/*", "application/*", "application/json"):
            return "json"
        if media_type == "application/vnd.pgrst.array+json":
            return "stripped" if stripped else "json"
        if media_type in ("application/vnd.pgrst.object+json", "application/vnd.pgrst.object"):
            return "object"
        requested.append(part.strip())
    message = "None of these media types are available: " + ", ".join(requested)
    raise pgrst_error(406, "PGRST107", message)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise pgrst_error(400, "PGRST102", "Empty or invalid json")
    return value


def content_range(lower: int, rows: int, total: int | None) -> str:
    """PostgREST's `Content-Range`: `0-999/5000`, `0-999/*`, `*/0`, `*/*`."""
    upper = lower + rows - 1
    span = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{span}/{'*' if total is None else total}"


def create_postgrest_app(
    dsn: str,
    *,
    project: str,
    jwt_secret: str,
    api_keys: Iterable[str],
    max_rows: int = 1000,
    schema: str = "public",
) -> Starlette:
    """A Starlette app serving `/rest/v1/{table}` for the tables of `schema` in `dsn`, and the
    OpenAPI document of them at `/rest/v1/`. Keys in `api_keys` starting `sb_publishable_` or
    `sb_secret_` are the new opaque keys (roles anon and service_role); the rest are JWTs."""
    sim = PostgrestSimulator(
        dsn,
        project=project,
        jwt_secret=jwt_secret,
        api_keys=api_keys,
        max_rows=max_rows,
        schema=schema,
    )
    methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route("/rest/v1/", sim.root, methods=["GET", "HEAD"]),
        Route("/rest/v1/rpc/{function}", sim.rpc, methods=["POST"]),
        Route("/rest/v1/{table}", sim.handle, methods=methods),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app

"""Tests for the Supabase schema variants (`sandbox/supabase_shapes.py`) as the sandbox serves them.

What is exercised: a whole `Sandbox` per variant (its world at scale 0.1, three project databases
in the session's embedded PostgreSQL, the PostgREST simulators on 127.0.0.1), read over HTTP with
httpx: the OpenAPI root against the declared shapes, every stored row against the world's row
through its shape, the world's own rows against a fresh world's, and `Sandbox.alter_source`.

What is simulated: the vendor side only; no client code of ours runs here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from resources.supabase import KEY_DIGEST
from sandbox.stack import SUPABASE_PROJECTS, Sandbox
from sandbox.supabase_db import KEY_DIGEST_PROJECTS
from sandbox.supabase_shapes import DEFAULT, ENUMS, VARIANTS, Column, TableShape, uuid_key
from sandbox.world import World
from tests.conftest import FAST_SANDBOX, SEED

SCALE = 0.1
SMALL_SANDBOX = {**FAST_SANDBOX, "scale": SCALE}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant_sandbox(pg_server: str, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(
        pg_server, prefix=f"variant_{request.param}", variant=request.param, **SMALL_SANDBOX
    ) as sandbox:
        yield sandbox


def _get(
    sandbox: Sandbox, project: str, path: str, key: str = "secret", **params: str
) -> httpx.Response:
    token = sandbox.keys[project][key]
    headers = {"apikey": token, "Authorization": f"Bearer {token}"}
    url = f"{sandbox.servers[f'supabase_{project}'].url}/rest/v1/{path}"
    return httpx.get(url, params=params, headers=headers, timeout=10)


def _expected_format(pg_type: str) -> str:
    """What PostgREST 13 prints as `format`: the catalog's name, unmodified, schema-qualified
    for a user type."""
    if pg_type in ENUMS:
        return f"public.{pg_type}"
    return pg_type.split("(")[0]


def _tables(sandbox: Sandbox) -> Iterator[tuple[str, str, TableShape]]:
    for project in SUPABASE_PROJECTS:
        for name, shape in sandbox.shapes[project].items():
            yield project, name, shape


def test_given_variant_when_root_read_with_secret_key_then_it_lists_the_variant_shape(
    variant_sandbox: Sandbox,
) -> None:
    for project in SUPABASE_PROJECTS:
        response = _get(variant_sandbox, project, "")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/openapi+json; charset=utf-8"
        spec = response.json()
        assert spec["swagger"] == "2.0"
        shapes = variant_sandbox.shapes[project]
        assert sorted(spec["definitions"]) == sorted(shapes)
        functions = [f"/rpc/{KEY_DIGEST}"] if project in KEY_DIGEST_PROJECTS else []
        assert sorted(spec["paths"]) == sorted(["/", *(f"/{t}" for t in shapes), *functions])
        for name, shape in shapes.items():
            definition = spec["definitions"][name]
            properties = definition["properties"]
            assert list(properties) == shape.names()
            assert definition["required"] == [c.name for c in shape.columns if c.not_null]
            for column in shape.columns:
                prop = properties[column.name]
                assert prop["format"] == _expected_format(column.type), (name, column.name)
                is_pk = "<pk/>" in prop.get("description", "")
                assert is_pk == column.primary_key, (name, column.name)


def _decoded(column: Column, value: Any) -> Any:
    """A JSON value back as the Python value the shape stored."""
    if value is None:
        return None
    if column.type.startswith("timestamp"):
        return datetime.fromisoformat(value)
    if column.type.startswith("numeric"):
        return Decimal(str(value))
    if column.type == "date":
        return date.fromisoformat(value)
    if column.type == "uuid":
        return uuid.UUID(value)
    return value


def test_given_variant_when_tables_read_then_every_world_row_is_served_through_its_shape(
    variant_sandbox: Sandbox,
) -> None:
    for project, name, shape in _tables(variant_sandbox):
        world_rows = variant_sandbox.world.supabase[project][name].rows.values()
        served = _get(variant_sandbox, project, name, limit="5000").json()
        assert len(served) == len(world_rows), name
        key = shape.key
        by_key = {_decoded(key, row[key.name]): row for row in served}
        for world_row in world_rows:
            row = by_key[key.value(world_row)]
            assert list(row) == shape.names()
            stored = {c.name: _decoded(c, row[c.name]) for c in shape.columns}
            assert stored == {c.name: c.value(world_row) for c in shape.columns}, name


def test_given_variant_then_the_world_keeps_canonical_rows_equal_to_a_fresh_world(
    variant_sandbox: Sandbox,
) -> None:
    fresh = World(SEED, SCALE)
    for project, tables in DEFAULT.items():
        for name, shape in tables.items():
            rows = variant_sandbox.world.supabase[project][name].rows
            assert rows == fresh.supabase[project][name].rows, name
            assert all(list(row) == shape.names() for row in rows.values()), name


# -- what each variant promises, spelled out ------------------------------------------------------


def _rows(sandbox: Sandbox, project: str, table: str, **params: str) -> list[dict[str, Any]]:
    response = _get(sandbox, project, table, **params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def keys_sandbox(pg_server: str) -> Iterator[Sandbox]:
    with Sandbox(pg_server, prefix="variant_keys_only", variant="keys", **SMALL_SANDBOX) as s:
        yield s


def test_given_keys_variant_then_keys_are_uuids_and_slugs_and_foreign_keys_follow(
    keys_sandbox: Sandbox,
) -> None:
    users = _rows(keys_sandbox, "tripwire", "tripwire_users", select="id,created_at")
    user_ids = {row["id"] for row in users}
    expected = {str(uuid_key("tripwire_users")(i)) for i in range(1, len(users) + 1)}
    assert user_ids == expected
    ordered = [row["id"] for row in _rows(keys_sandbox, "tripwire", "tripwire_users", order="id")]
    assert ordered != [str(uuid_key("tripwire_users")(i)) for i in range(1, len(users) + 1)]
    assert all("+" not in row["created_at"] for row in users)  # without time zone
    purchases = _rows(keys_sandbox, "tripwire", "tripwire_purchases", select="user_id")
    assert {row["user_id"] for row in purchases} <= user_ids
    people = _rows(keys_sandbox, "traffic", "targetologists", select="id", order="id")
    assert [row["id"] for row in people] == ["t-1", "t-2", "t-3", "t-4"]
    rules = _rows(keys_sandbox, "traffic", "targetologist_utm_rules", select="targetologist_id")
    assert {row["targetologist_id"] for row in rules} <= {"t-1", "t-2", "t-3", "t-4"}
    first = min(user_ids)
    after = _rows(keys_sandbox, "tripwire", "tripwire_users", select="id", id=f"gt.{first}")
    assert len(after) == len(users) - 1


def test_given_like_rules_variant_then_rules_are_escaped_like_patterns(pg_server: str) -> None:
    with Sandbox(pg_server, prefix="variant_like", variant="like_rules", **SMALL_SANDBOX) as s:
        rules = _rows(s, "traffic", "targetologist_utm_rules", order="id")
    assert [(r["utm_field"], r["pattern"]) for r in rules] == [
        ("utm_campaign", "aida\\_%"),
        ("utm_campaign", "bek\\_%"),
        ("utm_campaign", "dana\\_%"),
        ("utm_source", "ig\\_erlan"),
        ("utm_campaign", "%\\_erl\\_%"),
    ]
    assert all("match_type" not in r for r in rules)


def test_given_extra_columns_variant_then_root_shows_enum_array_and_json_types(
    pg_server: str,
) -> None:
    with Sandbox(pg_server, prefix="variant_extra", variant="extra_columns", **SMALL_SANDBOX) as s:
        traffic = _get(s, "traffic", "").json()["definitions"]["all_sales_tracking"]
        main = _get(s, "main", "").json()["definitions"]
        sale = _rows(s, "traffic", "all_sales_tracking", limit="1", order="id")[0]
        lead = _rows(s, "main", "landing_leads", limit="1", order="id")[0]
    assert traffic["properties"]["channel"] == {
        "enum": list(ENUMS["sale_channel"]),
        "format": "public.sale_channel",
        "type": "string",
    }
    assert "channel" in traffic["required"]
    assert main["landing_leads"]["properties"]["tags"] == {
        "format": "text[]",
        "type": "array",
        "items": {"type": "string"},
    }
    assert main["prooftest_leads"]["properties"]["form"] == {"format": "jsonb"}
    assert main["landing_leads"]["properties"]["synced_to_amocrm"]["default"] is False
    assert main["landing_leads"]["properties"]["id"] == {
        "description": "Note:\nThis is a Primary Key.<pk/>",
        "format": "bigint",
        "type": "integer",
    }
    assert sale["channel"] in ENUMS["sale_channel"]
    assert isinstance(lead["tags"], list) and isinstance(lead["page_views"], int)


def test_foreign_keys_are_described_as_postgrest_does(keys_sandbox: Sandbox) -> None:
    spec = _get(keys_sandbox, "tripwire", "").json()
    user_id = spec["definitions"]["tripwire_purchases"]["properties"]["user_id"]
    assert user_id == {
        "description": "Note:\nThis is a Foreign Key to `tripwire_users.id`."
        "<fk table='tripwire_users' column='id'/>",
        "format": "uuid",
        "type": "string",
    }


# -- keys and the root ----------------------------------------------------------------------------

FORBIDDEN = {
    "message": "Access to schema is forbidden",
    "hint": "Accessing the schema via the Data API is only allowed using a secret API key.",
}


@pytest.mark.parametrize(
    ("key", "root_status", "table_status"),
    [
        ("anon", 403, 200),
        ("publishable", 403, 200),
        ("service_role", 200, 200),
        ("secret", 200, 200),
    ],
)
def test_given_key_when_root_and_table_read_then_only_secret_keys_see_the_schema(
    keys_sandbox: Sandbox, key: str, root_status: int, table_status: int
) -> None:
    root = _get(keys_sandbox, "traffic", "", key=key)
    assert root.status_code == root_status
    if root_status == 403:
        assert root.json() == FORBIDDEN
    assert _get(keys_sandbox, "traffic", "targetologists", key=key).status_code == table_status


# -- alter_source ---------------------------------------------------------------------------------


def test_given_alter_source_when_next_requests_then_new_shape_is_served_and_synced(
    pg_server: str,
) -> None:
    with Sandbox(pg_server, prefix="variant_alter", **SMALL_SANDBOX) as sandbox:
        before = _rows(sandbox, "main", "landing_leads", limit="1")[0]
        assert "utm_term" in before
        sandbox.alter_source(
            "main", "landing_leads", add={"score": "integer", "labels": "text[]"}, drop=["utm_term"]
        )
        row = _rows(sandbox, "main", "landing_leads", limit="1")[0]
        assert (row["score"], row["labels"]) == (None, None)
        assert "utm_term" not in row
        props = _get(sandbox, "main", "").json()["definitions"]["landing_leads"]["properties"]
        assert list(props)[-2:] == ["score", "labels"] and "utm_term" not in props
        assert props["labels"]["format"] == "text[]"
        filtered = _rows(sandbox, "main", "landing_leads", select="id,score", score="is.null")
        world = sandbox.world.supabase["main"]["landing_leads"]
        assert len(filtered) == len(world.rows)
        sandbox.advance(24)
        served = _rows(sandbox, "main", "landing_leads", select="id", limit="5000")
        assert len(served) == len(world.rows)
        assert "utm_term" in next(iter(world.rows.values()))  # the world keeps its own rows

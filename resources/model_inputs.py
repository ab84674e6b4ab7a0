"""What each SQL model reads, declared once in its file's `-- reads:` header.

The incremental build trusts the declaration: a model rebuilds the days its inputs changed (a
model input's logged days, a raw input's days as `sql/touched/<model>.sql` maps them) and every
day when a raw input that file does not map changed at all. tests/test_model_inputs.py parses
each model's SQL and fails when what it reads and what it declares differ.
"""

from __future__ import annotations

import re
from functools import cache

from resources.sql_files import SQL_DIR, load_sql

# the schemas of relations a model may read: raw mirrors, their staging views, models, ops logs
RELATION = re.compile(r"\b((?:raw|stg)_\w+|core|marts|ops)\.(\w+)\b(?!\s*\()")
FUNCTION = re.compile(r"\b((?:raw|stg)_\w+|core|marts|ops)\.(\w+)\s*\(")
HEADER = re.compile(r"^-- reads:(.*(?:\n--\s{2,}.*)*)", re.MULTILINE)
MODEL_SCHEMAS = ("core", "marts")


def _without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def relations_read(text: str) -> set[str]:
    """The schema-qualified relations a SQL text names outside its comments."""
    return {f"{s}.{n}" for s, n in RELATION.findall(_without_comments(text))}


def functions_called(text: str) -> set[str]:
    """The schema-qualified functions a SQL text calls outside its comments."""
    return {f"{s}.{n}" for s, n in FUNCTION.findall(_without_comments(text))}


@cache
def declared_inputs(table: str) -> tuple[str, ...]:
    """The relations `table`'s `-- reads:` header names (remarks in parentheses aside)."""
    found = HEADER.search(load_sql(table.replace(".", "/")))
    if found is None:
        raise ValueError(f"sql/{table.replace('.', '/')}.sql has no '-- reads:' header line")
    names = re.sub(r"\([^)]*\)|\n--", " ", found.group(1))
    return tuple(sorted({n.strip() for n in names.split(",") if n.strip()}))


def is_model(relation: str) -> bool:
    return relation.split(".")[0] in MODEL_SCHEMAS


def raw_table(relation: str) -> str:
    """The raw table a raw input is (a staging view stands for the mirror it selects from)."""
    return relation.replace("stg_", "raw_", 1) if relation.startswith("stg_") else relation


def touched_sql(table: str) -> str | None:
    """`sql/touched/<table>.sql`, which maps raw changes to `table`'s days, if it has one."""
    name = f"touched/{table}"
    return load_sql(name) if (SQL_DIR / f"{name}.sql").is_file() else None


@cache
def mapped_inputs(table: str) -> frozenset[str]:
    """The raw inputs whose changes `table`'s touched-days SQL maps to days (the others: any
    change rebuilds every day)."""
    text = touched_sql(table)
    return frozenset(relations_read(text)) if text else frozenset()

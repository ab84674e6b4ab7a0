"""SQL lives in `sql/`, one file per table; this is the one helper that loads it by name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def load_sql(name: str) -> str:
    """`load_sql("core/leads")` → the text of `sql/core/leads.sql`."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL model named {name!r} (looked for {path})")
    return path.read_text()


def migrations() -> list[tuple[str, str]]:
    """(version, sql) of every DDL file, in order; the version is the file's stem."""
    return [(p.stem, p.read_text()) for p in sorted((SQL_DIR / "ddl").glob("*.sql"))]


def model_names(schema: str) -> tuple[str, ...]:
    """The tables of `schema` that a model file builds: `("core.ad_spend_daily", ...)`."""
    return tuple(f"{schema}.{p.stem}" for p in sorted((SQL_DIR / schema).glob("*.sql")))

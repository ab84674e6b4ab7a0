"""Vendor bodies to Python values and back to JSON text, without losing a value on the way.

orjson is the fast path both ways, but it refuses a whole body for one odd value (a lone
surrogate escape, a byte that is not UTF-8, a number beyond a double, nesting beyond 1024) and
reads an integer beyond 64 bits as a rounded float; it writes no integer beyond 64 bits and no
nesting beyond 255. Those bodies take the standard library's parser instead, which keeps every
integer exact, numbers beyond a double as Decimal, and bytes that are not UTF-8 as lone
surrogates (`surrogateescape`), so the one record holding them can be quarantined while the rest
of its page loads. What PostgreSQL cannot store (NUL, lone surrogates, numbers beyond numeric)
is left for the loader to find out row by row: PostgreSQL is the judge of what it can hold.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import orjson

# 19 digits in a row may be an integer orjson would read as a rounded float (beyond 64 bits);
# a long digit string inside a text value only sends the body down the exact path too
LONG_DIGITS = re.compile(rb"\d{19}")
# how deep the exact path may nest (Python's default recursion limit stops it near 1000)
MAX_DEPTH = 5000
INT_DIGITS = sys.get_int_max_str_digits() or 4300


T = TypeVar("T", dict, list)


class BodyError(ValueError):
    """A body that is not JSON at all: the vendor's fault, never one record's."""


def loads(content: bytes | str) -> Any:
    """A JSON body (or JSON text we wrote) as Python values, exactly (see the docstring)."""
    raw = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    if not LONG_DIGITS.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    text = content if isinstance(content, str) else content.decode("utf-8", "surrogateescape")
    try:
        with _deep():
            return json.loads(text, parse_float=_number, parse_constant=Decimal)
    except (ValueError, RecursionError) as exc:
        raise BodyError(_why(raw, exc)) from None


def loads_as(content: bytes, kind: type[T]) -> T:
    """A body that must be a JSON object (`dict`) or array (`list`), else BodyError."""
    body = loads(content)
    if not isinstance(body, kind):
        raise BodyError(f"it is a JSON {type(body).__name__}, not {_NAMES[kind]}")
    return body


_NAMES = {dict: "an object", list: "an array"}


def dumps(value: Any) -> str:
    """JSON text of parsed vendor values, for a jsonb column; never loses a number."""
    try:
        return orjson.dumps(value, default=_fragment).decode()
    except orjson.JSONEncodeError:
        # beyond orjson: integers over 64 bits, nesting deeper than 255, lone surrogates
        with _deep():
            return json.dumps(value, ensure_ascii=False, default=_plain)


def ascii_text(value: Any) -> str:
    """JSON text with every non-ASCII character escaped: holds even lone surrogates and NUL
    (as `\\udcff`, `\\u0000`), for a quarantined record PostgreSQL would not take as jsonb."""
    with _deep():
        return json.dumps(value, ensure_ascii=True, default=_plain)


def _number(text: str) -> float | Decimal:
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # a Decimal here is a number beyond a double: an integer unless it has a fraction (or
        # more digits than Python prints as an int: then its text)
        whole = value.is_finite() and value == value.to_integral_value()
        return int(value) if whole and value.adjusted() < INT_DIGITS else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


@contextmanager
def _deep() -> Iterator[None]:
    """Room for the standard library's recursive parser and encoder to reach MAX_DEPTH."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, MAX_DEPTH + 1000))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _why(content: bytes, exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return f"it nests deeper than {MAX_DEPTH} levels"
    start = content[:60].decode("utf-8", "replace").strip()
    return f"it is not JSON ({exc}; it starts {start!r})"

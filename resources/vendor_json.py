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
# a long digit string inside a text value only sends the body down the exact path too. Found by
# mapping every digit to "0" and anything else to " " (a regex is 5x slower than the parse).
DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
DIGIT_RUN = b"0" * 19
# how deep the exact path may nest (Python's default recursion limit stops it near 1000)
MAX_DEPTH = 5000
RAW_MARK = "\x00number:"
RAW_NUMBER = re.compile(r'"\\u0000number:([^"]*)"')


T = TypeVar("T", dict, list)


class BodyError(ValueError):
    """A body that is not JSON at all: the vendor's fault, never one record's."""


def loads(content: bytes | str) -> Any:
    """A JSON body (or JSON text we wrote) as Python values, exactly (see the docstring)."""
    raw = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    if DIGIT_RUN not in raw.translate(DIGITS_ONLY):
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


def loads_as(content: bytes | str, kind: type[T]) -> T:
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
        return _standard(value, ascii_only=False)


def dumps_all(values: list[Any]) -> list[str]:
    """`dumps` of each value, by orjson alone when it can write every one (one C call each)."""
    try:
        return list(map(bytes.decode, map(orjson.dumps, values)))
    except TypeError:  # orjson's JSONEncodeError is one: a Decimal, or a value beyond orjson
        return list(map(dumps, values))


def ascii_text(value: Any) -> str:
    """JSON text with every non-ASCII character escaped: holds even lone surrogates and NUL
    (as `\\udcff`, `\\u0000`), for a quarantined record PostgreSQL would not take as jsonb."""
    return _standard(value, ascii_only=True)


def _number(text: str) -> float | Decimal:
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _plain(value: Any) -> Any:
    # the standard library writes no Decimal: a marked string stands for its text, unquoted
    # after encoding (the NUL of the mark is always written escaped, so it cannot collide
    # with the text of a value)
    if isinstance(value, Decimal):
        return f"{RAW_MARK}{value}"
    raise TypeError(f"{type(value).__name__} is not JSON")


def _standard(value: Any, ascii_only: bool) -> str:
    with _deep():
        text = json.dumps(value, ensure_ascii=ascii_only, default=_plain)
    return RAW_NUMBER.sub(r"\1", text) if "\\u0000number:" in text else text


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

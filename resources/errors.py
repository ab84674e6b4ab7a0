"""The one error type every source client raises: a clear message, and whether to retry."""

from __future__ import annotations

from typing import Any


class SourceError(Exception):
    """A vendor or configuration problem, worded for the operator who has to fix it.

    `transient` errors (timeouts, resets, 429/5xx after our own retries) may succeed on a later
    attempt; the others (bad key, missing variable, unpaid subscription) never will until a person
    acts, so Dagster must not retry them.
    """

    def __init__(self, source: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.source = source
        self.message = message
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        # whole, whatever a subclass's __init__ takes: a load that fails in a child process
        # reaches its parent as itself (Exception's own reduce re-calls __init__ with the
        # message alone, which fails, and the parent sees a BrokenProcessPool)
        return _unpickled, (type(self), self.args, self.__dict__)


def _unpickled(cls: type[SourceError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(SourceError):
    """A missing or malformed setting: names the variable and the fix."""


def require_setting(source: str, name: str, value: str | None, fix: str) -> str:
    if value is None or not value.strip():
        raise ConfigError(source, f"{source}: {name} is not set ({fix}).")
    return value.strip()

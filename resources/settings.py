"""Non-secret settings read when a run starts (never at import), each with its default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from resources.errors import ConfigError, require_setting

DEFAULT_REPORTING_TZ = "Asia/Almaty"
# Sources load hourly: one two hours behind is a warning, six hours an error. The UI's freshness
# policies, the dashboard API's stale flags and the health probe all read these two.
SOURCE_STALE_WARNING = timedelta(hours=2)
SOURCE_STALE_ERROR = timedelta(hours=6)


def env(name: str) -> str | None:
    """A setting read through `dg.EnvVar` when a run needs it; blank counts as unset.

    Resources read their variables this way rather than binding them as required config, so a
    missing one fails only the assets that need it, with our message naming it.
    """
    value = dg.EnvVar(name).get_value()
    return value.strip() if value and value.strip() else None


# Every variable a resource field is bound to (`bind`), for `declare_unset`.
BOUND: set[str] = set()


def bind(variables: Mapping[str, str]) -> dict[str, Any]:
    """{field: variable} → {field: dg.EnvVar(variable)}: the fields a resource is built with in
    `definitions.py`, so `dagster definitions validate` and the UI's resources page show them."""
    BOUND.update(variables.values())
    return {field: dg.EnvVar(variable) for field, variable in variables.items()}


def declare_unset() -> None:
    """Declare every bound variable that is unset as blank in this process's environment.

    Dagster refuses a run whose bound variable is unset before any of our code runs, in one
    multi-line error for the whole run; declared blank, the field resolves to "" and the step
    that needs it fails alone with the resource's one line naming the variable and the fix.
    """
    for name in BOUND:
        os.environ.setdefault(name, "")


def load_env_file(path: os.PathLike[str] | str) -> None:
    """The settings file's values for every variable unset or blank (blank counts as unset,
    and `declare_unset` may have declared a variable blank before the file was read)."""
    from dotenv import dotenv_values

    for name, value in dotenv_values(path).items():
        if value is not None and not (os.environ.get(name) or "").strip():
            os.environ[name] = value


def field_value(value: str | None) -> str | None:
    """A bound field's setting; blank counts as unset. In a run Dagster has resolved it; a
    resource used directly (a command, a test) still holds the `dg.EnvVar`, read now."""
    if isinstance(value, dg.EnvVar):
        value = value.get_value()
    return value.strip() if value and value.strip() else None


class SettingsResource(dg.ConfigurableResource):
    """A vendor's resource whose settings are optional fields, each bound in `definitions.py`
    to the variable `variables()` names: a missing one fails, at its first use in a step, only
    that vendor's steps, with one line naming the variable and the fix. REQUIRED, the one list
    of what the source cannot load without, lets a command or a diagnostic name every missing
    one at once before anything runs."""

    SOURCE: ClassVar[str]
    VARIABLES: ClassVar[Mapping[str, str]]  # {field: variable}
    # {field the source cannot load without: the fields any of which, set, stands in for it}
    REQUIRED: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    @classmethod
    def bound(cls) -> dict[str, Any]:
        return bind(cls.VARIABLES)

    @property
    def source(self) -> str:
        """The source's name as messages give it."""
        return self.SOURCE

    def variables(self) -> Mapping[str, str]:
        """{field: the variable definitions.py binds it to}."""
        return self.VARIABLES

    def setting(self, field: str, fix: str) -> str:
        """A required setting's value, or the ConfigError naming its variable and `fix`."""
        value = field_value(getattr(self, field))
        return require_setting(self.source, self.variables()[field], value, fix)

    def stored_settings(self, warehouse: Any) -> frozenset[str]:
        """The required fields the warehouse already holds a value for (none but AmoCRM's)."""
        return frozenset()

    def missing(self, warehouse: Any = None) -> dict[str, tuple[str, ...]]:
        """{variable: the variables that would stand in for it} of every required setting unset
        (a stand-in set counts; `warehouse`, if given, may hold one: `stored_settings`)."""
        names, stored = self.variables(), self.stored_settings(warehouse)
        return {
            names[field]: tuple(names[f] for f in alternatives)
            for field, alternatives in self.REQUIRED.items()
            if field not in stored
            and not any(field_value(getattr(self, f)) for f in (field, *alternatives))
        }

    def require_all(self, warehouse: Any = None) -> None:
        """Every required setting is set, or one ConfigError naming each one that is not."""
        if missing := self.missing(warehouse):
            raise ConfigError(self.source, not_configured(self.source, missing))


def not_configured(source: str, missing: Mapping[str, tuple[str, ...]]) -> str:
    """One line naming every missing variable of a source and what would stand in, e.g.
    "Facebook: not configured: FACEBOOK_ACCESS_TOKEN, FACEBOOK_APP_ID not set (each is
    described in .env.example)."."""
    names = [f"{name} (or {' or '.join(alternatives)})" if alternatives else name
             for name, alternatives in missing.items()]  # fmt: skip
    return (f"{source}: not configured: {', '.join(names)} not set (each is described in "
            ".env.example).")  # fmt: skip


def built_with(resource: dg.ConfigurableResource) -> dict[str, Any]:
    """{field: value} of the fields `resource` was built with, a `dg.EnvVar` as it is, in the
    order the class declares them."""
    given = resource.model_fields_set
    return {name: getattr(resource, name) for name in type(resource).model_fields if name in given}


def bound_variables(resource: dg.ConfigurableResource) -> dict[str, str]:
    """{field: variable} of each field `resource` was built with bound to a `dg.EnvVar`."""
    fields = built_with(resource).items()
    return {name: value.env_var_name for name, value in fields if isinstance(value, dg.EnvVar)}


def settings_line(
    key: str, resource: dg.ConfigurableResource, stand_ins: Mapping[str, str] | None = None
) -> str:
    """What `make settings` says of a resource: the variables it reads, and which of them are
    blank or unset (never a value), each with what stands in for it if something does."""
    variables = list(bound_variables(resource).values())
    stand_ins = stand_ins or {}
    unset = [name + (f" ({stand_ins[name]} stands in)" if name in stand_ins else "")
             for name in variables if env(name) is None]  # fmt: skip
    return (f"Resource {key} ({type(resource).__name__}) reads {', '.join(variables)}; "
            f"unset: {', '.join(unset) or 'none'}.")  # fmt: skip


def at_launch(resource: dg.ConfigurableResource) -> Any:  # Dagster's PartialResource
    """`resource` as the Definitions hold it: configured at launch with the fields it was built
    with (its `dg.EnvVar` bindings) as defaults. A run config, the launchpad's included, then
    sets only the fields it names; a configured resource would take the run config as its
    whole config, every binding it leaves out read as the field's default (blank)."""
    return type(resource).configure_at_launch(**built_with(resource))


def reporting_tz() -> str:
    """REPORTING_TZ: the zone whose calendar days the dashboard reports in."""
    name = dg.EnvVar("REPORTING_TZ").get_value(DEFAULT_REPORTING_TZ) or DEFAULT_REPORTING_TZ
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "settings",
            f"REPORTING_TZ={name!r} is not a time zone name (use an IANA name such as "
            f"{DEFAULT_REPORTING_TZ}).",
        ) from None
    return name


def port_setting(name: str, default: int, source: str) -> int:
    """A TCP port setting (default `default`); anything but a port number is a ConfigError."""
    raw = env(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(source, f"{name}={raw!r} is not a port number (default {default}).")
    return int(raw)


DEFAULT_REPORTING_CURRENCY = "KZT"


def reporting_currency() -> str:
    return (env("REPORTING_CURRENCY") or DEFAULT_REPORTING_CURRENCY).upper()


# what README and .env.example promise when FX_RATES is unset: tenge per dollar and per euro
DEFAULT_FX_RATES = "USD=480,EUR=520"


def fx_rates() -> dict[str, str]:
    """FX_RATES, e.g. "USD=480.5,RUB=5.2": units of the reporting currency per unit; unset,
    DEFAULT_FX_RATES (an account in a currency with no rate gets NULL spend, never 0)."""
    rates = {}
    for part in (env("FX_RATES") or DEFAULT_FX_RATES).split(","):
        if not part.strip():
            continue
        currency, _, rate = part.partition("=")
        try:
            if float(rate) <= 0:
                raise ValueError(rate)
        except ValueError:
            raise ConfigError(
                "settings",
                f"FX_RATES has a bad entry {part.strip()!r}; write CUR=rate pairs, e.g. USD=480.5.",
            ) from None
        rates[currency.strip().upper()] = rate.strip()
    return rates

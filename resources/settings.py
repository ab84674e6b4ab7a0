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
    to the variable VARIABLES names: a missing one fails, at its first use in a step, only that
    vendor's steps, with one line naming the variable and the fix."""

    SOURCE: ClassVar[str]
    VARIABLES: ClassVar[Mapping[str, str]]  # {field: variable}

    @classmethod
    def bound(cls) -> dict[str, Any]:
        return bind(cls.VARIABLES)

    def setting(self, field: str, fix: str) -> str:
        """A required setting's value, or the ConfigError naming its variable and `fix`."""
        value = field_value(getattr(self, field))
        return require_setting(self.SOURCE, self.VARIABLES[field], value, fix)


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


# What each source cannot load without: (variable, alternatives any of which also does).
# `missing_settings` names every one unset at once; the clients still check their own when
# they open (an AmoCRM token pair stored by `authorize` stands in for AMOCRM_ACCESS_TOKEN).
SUPABASE_KEY_SUFFIXES = ("SERVICE_ROLE_KEY", "SECRET_KEY", "ANON_KEY", "PUBLISHABLE_KEY")


def _supabase(project: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    prefix = f"SUPABASE_{project.upper()}"
    keys = tuple(f"{prefix}_{s}" for s in SUPABASE_KEY_SUFFIXES)
    # <prefix>_DB_URL (the bulk path) replaces both
    return ((f"{prefix}_URL", (f"{prefix}_DB_URL",)), (keys[0], (*keys[1:], f"{prefix}_DB_URL")))


REQUIRED_SETTINGS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "supabase_main": _supabase("main"),
    "supabase_tripwire": _supabase("tripwire"),
    "supabase_traffic": _supabase("traffic"),
    "amocrm": tuple((f"AMOCRM_{n}", ()) for n in (
        "BASE_URL", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI", "ACCESS_TOKEN")),
    "facebook": tuple((f"FACEBOOK_{n}", ()) for n in (
        "ACCESS_TOKEN", "AD_ACCOUNT_IDS", "APP_ID", "APP_SECRET")),
}  # fmt: skip
SOURCE_NAMES = {"supabase_main": "Supabase Main", "supabase_tripwire": "Supabase Tripwire",
                "supabase_traffic": "Supabase Traffic", "amocrm": "AmoCRM",
                "facebook": "Facebook"}  # fmt: skip


def missing_settings(source: str, *, token_stored: bool = False) -> list[str]:
    """Every variable `source` needs that is unset (one of its alternatives set counts)."""
    missing = []
    for name, alternatives in REQUIRED_SETTINGS.get(source, ()):
        if name == "AMOCRM_ACCESS_TOKEN" and token_stored:
            continue
        if not any(env(n) for n in (name, *alternatives)):
            missing.append(name)
    return missing


def missing_sentence(source: str, missing: list[str]) -> str:
    """One line naming every missing variable of a source, e.g. "Facebook: not configured:
    FACEBOOK_ACCESS_TOKEN, FACEBOOK_APP_ID not set (each is described in .env.example)."."""
    names = []
    for name in missing:
        # a Supabase key: the read-only one is named too, it is the one users often have
        anon = name.replace("SERVICE_ROLE_KEY", "ANON_KEY")
        names.append(f"{name} (or {anon})" if anon != name else name)
    return (f"{SOURCE_NAMES[source]}: not configured: {', '.join(names)} not set (each is "
            "described in .env.example).")  # fmt: skip

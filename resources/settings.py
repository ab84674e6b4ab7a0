"""Non-secret settings read when a run starts (never at import), each with its default."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from resources.errors import ConfigError

DEFAULT_REPORTING_TZ = "Asia/Almaty"


def env(name: str) -> str | None:
    """A setting read through `dg.EnvVar` when a run needs it; blank counts as unset.

    Resources read their variables this way rather than binding them as required config, so a
    missing one fails only the assets that need it, with our message naming it.
    """
    value = dg.EnvVar(name).get_value()
    return value.strip() if value and value.strip() else None


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


DEFAULT_REPORTING_CURRENCY = "KZT"


def _pipeline(name: str) -> int | None:
    raw = env(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ConfigError(
            "settings", f"{name} must be the numeric id of the AmoCRM pipeline (got {raw!r})."
        )
    return int(raw)


def fx_rates() -> dict[str, str]:
    """FX_RATES, e.g. "USD=480.5,RUB=5.2": units of the reporting currency per unit."""
    rates = {}
    for part in (env("FX_RATES") or "").split(","):
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


def model_params() -> dict[str, Any]:
    """The parameters every core and marts SQL model is run with."""
    return {
        "tz": reporting_tz(),
        "currency": env("REPORTING_CURRENCY") or DEFAULT_REPORTING_CURRENCY,
        "fx": json.dumps(fx_rates()),
        "express": _pipeline("AMOCRM_EXPRESS_PIPELINE_ID"),
        "flagship": _pipeline("AMOCRM_FLAGSHIP_PIPELINE_ID"),
    }

"""Non-secret settings read when a run starts (never at import), each with its default."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from resources.errors import ConfigError
from resources.sql_files import load_sql

if TYPE_CHECKING:
    from resources.warehouse import WarehouseResource

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


def model_params(warehouse: WarehouseResource, table: str) -> dict[str, Any]:
    """The parameters the SQL model `table` (e.g. "core.sales") is run with.

    The course pipelines (the contract's `amocrm.pipelines`, resolved against the stored AmoCRM
    pipelines) are added only for the models whose SQL binds them: a contract mistake then fails
    those with its sentence (a `dg.Failure`) while spend and source freshness keep building.
    """
    # imported here, not at the top: the contract modules import this one (for env)
    from contract.amocrm import PIPELINE_KEYS, resolve_pipelines

    try:
        params: dict[str, Any] = {
            "tz": reporting_tz(),
            "currency": env("REPORTING_CURRENCY") or DEFAULT_REPORTING_CURRENCY,
            "fx": json.dumps(fx_rates()),
        }
        text = load_sql(table.replace(".", "/"))
        if any(f"%({key})s" in text for key in PIPELINE_KEYS):
            params |= resolve_pipelines(warehouse, before_load=True)
    except ConfigError as exc:
        # the model fails with the sentence alone, as a source step does, and is not retried:
        # only a person editing the setting or the contract can fix it
        raise dg.Failure(description=exc.message, allow_retries=False) from None
    return params

"""Non-secret settings read when a run starts (never at import), each with its default."""

from __future__ import annotations

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

"""What the API needs to know, read once when it starts; every limit it states is here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from contract.canonical import FUNNELS, UNKNOWN_FUNNEL
from resources.errors import ConfigError
from resources.settings import env

READER_ROLE = "dashboard_reader"
MAX_RANGE_DAYS = 731  # two years of days in one request; longer ranges page by year
DEFAULT_RANGE_DAYS = 30
API_FUNNELS = (*FUNNELS, UNKNOWN_FUNNEL)
SERVICE = "integrations-diagnostics"  # the old health endpoint's service name; monitors key on it


def cors_origins() -> tuple[str, ...]:
    """API_CORS_ORIGINS: the origins (comma list) of a dashboard frontend served elsewhere that
    may call the API from the browser; none by default (the charts page is same-origin)."""
    return tuple(o.strip().rstrip("/") for o in (env("API_CORS_ORIGINS") or "").split(",")
                 if o.strip())  # fmt: skip


@dataclass(frozen=True)
class ApiSettings:
    reader_url: str  # a connection as dashboard_reader: marts only, under row-level security
    cors_origins: tuple[str, ...] = field(default_factory=cors_origins)


def reader_url(warehouse_url: str) -> str:
    """DASHBOARD_READER_URL, or WAREHOUSE_URL with dashboard_reader's name and password."""
    explicit = env("DASHBOARD_READER_URL")
    if explicit:
        return explicit
    password = env("DASHBOARD_READER_PASSWORD")
    if not password:
        raise ConfigError(
            "api",
            "api: DASHBOARD_READER_PASSWORD is not set (the API connects as dashboard_reader; "
            "set it, or DASHBOARD_READER_URL to a full connection string).",
        )
    return as_reader(warehouse_url, password)


def as_reader(warehouse_url: str, password: str) -> str:
    url = make_url(warehouse_url).set(username=READER_ROLE, password=password)
    return url.render_as_string(hide_password=False)

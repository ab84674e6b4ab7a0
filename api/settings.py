"""What the API needs to know, read once when it starts; every limit it states is here."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from sqlalchemy.engine import make_url

from resources.canonical import FUNNELS, UNKNOWN_FUNNEL
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


# What a printed connection string shows instead of secrets the command did not get from the user
PASSWORD_PLACEHOLDER, TOKEN_PLACEHOLDER = "PASSWORD", "TOKEN"


def bi_url(warehouse_url: str, tcp: tuple[str, int] | None, token: str | None = None) -> str:
    """The connection string a BI tool uses: dashboard_reader (its password as PASSWORD) on the
    embedded server's TCP address `tcp`, else on DASHBOARD_READER_URL's or WAREHOUSE_URL's host,
    presenting its bearer token in `options` (libpq reads no '+' as a space: %20 it is)."""
    url = make_url(env("DASHBOARD_READER_URL") or warehouse_url)
    if tcp is not None:
        url = url.set(host=tcp[0], port=tcp[1], query={})
    url = url.set(drivername="postgresql", username=READER_ROLE, password=PASSWORD_PLACEHOLDER)
    query = {**url.query, "options": f"-c dashboard.token={token or TOKEN_PLACEHOLDER}"}
    base = url.set(query={}).render_as_string(hide_password=False)
    return f"{base}?{urlencode(query, quote_via=quote)}"

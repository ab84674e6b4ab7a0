"""The page of charts at /dashboard: one HTML page, its script and style, and the vendored chart
library (Chart.js, api/static/vendor/, re-fetched by `make vendor-charts`), all served from this
package: the page loads nothing from a CDN. The page itself needs no token; its script asks for
one, keeps it in sessionStorage and sends it as `Authorization: Bearer` to the JSON API."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse

from resources.errors import ConfigError
from resources.settings import reporting_tz

STATIC = Path(__file__).resolve().parent / "static"
# what the page may load: its own files and the API, nothing inline, nothing from elsewhere
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(tags=["dashboard"])


@cache
def _page_template() -> str:
    return (STATIC / "dashboard.html").read_text(encoding="utf-8")


def _reporting_tz(request: Request) -> str:
    """The app's reporting zone if its settings carry one, else REPORTING_TZ (Asia/Almaty)."""
    settings = getattr(request.app.state, "settings", None)
    name = getattr(settings, "reporting_tz", None)
    if isinstance(name, str) and name:
        return name
    return reporting_tz()


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request) -> Response:
    """The page; its default date range ends today in the reporting zone."""
    try:
        tz = _reporting_tz(request)
    except ConfigError as exc:  # a wrong REPORTING_TZ: its one sentence, not a stack trace
        return PlainTextResponse(str(exc), status_code=503)
    page = _page_template().replace("{{REPORTING_TZ}}", html.escape(tz))
    return HTMLResponse(page, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/dashboard/", include_in_schema=False)
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=308)


@router.get("/dashboard/static/{path:path}", include_in_schema=False)
def dashboard_static(path: str) -> FileResponse:
    """A file under api/static/ (the page's script, style, the vendored library); nothing else."""
    target = (STATIC / path).resolve()
    if (
        not target.is_relative_to(STATIC)
        or not target.is_file()
        or target.suffix not in MEDIA_TYPES
        or target.name.startswith(".")
    ):
        raise HTTPException(status_code=404, detail="Not Found")
    return FileResponse(
        target,
        media_type=MEDIA_TYPES[target.suffix],
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )

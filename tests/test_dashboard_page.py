"""The page of charts at /dashboard in a real browser: Debian's Chromium, headless, driven by
Playwright, against the API served over HTTP on 127.0.0.1 from a warehouse the sandbox filled.
A targetologist's token and an admin token each pick a month; every per-day number and every
total the page shows must equal marts.targetologist_daily read as the owner. Screenshots of both
views are taken every run; `make dashboard-test` (DASHBOARD_SCREENSHOTS=docs) writes them to docs/,
other runs to a temporary directory, so the suite leaves the committed ones alone."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from assets.jobs import SOURCES
from tests.api_server import Served, serve
from tests.conftest import ROOT

MONTH, FIRST, LAST = "2026-09", "2026-09-01", "2026-09-30"  # the sandbox world's first month
DOCS = ROOT / "docs"
SCREENSHOT_LIMIT = 300_000  # bytes: screenshots are committed
VIEWPORT = {"width": 1200, "height": 1400}
COLUMNS = ("spend", "leads", "sales", "revenue", "cpl", "roas")
INSTALL_HINT = (
    "Chromium is not installed: the dashboard page test drives Debian's chromium; install it "
    "with `sudo apt-get install -y chromium` (.ci/run does so in CI)."
)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


@dataclass
class Tokens:
    api: Served
    targetologist: str  # the month's busiest, whose own token `own` is
    own: str
    admin: str


@pytest.fixture
def tokens(loaded) -> Iterator[Tokens]:
    """The sandbox's world loaded and built, the API over HTTP, one token of each kind."""
    chromium_path()  # fail before anything else when the browser is missing
    warehouse, _ = loaded
    busiest = warehouse.fetch_all(
        "SELECT targetologist FROM marts.targetologist_daily WHERE day BETWEEN %s AND %s"
        " AND targetologist <> 'unattributed' GROUP BY 1 ORDER BY sum(leads) DESC, 1 LIMIT 1",
        (FIRST, LAST),
    )[0][0]
    with serve(warehouse) as api:
        yield Tokens(api, busiest, api.token(busiest), api.token(None))


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


# ---- what the marts hold, as the warehouse owner reads them ---------------------------------
def mart_days(warehouse, who: str | None) -> list[dict[str, Any]]:
    """Per day for one targetologist as stored, or for everyone summed (ratios from the sums,
    rounded as the marts round them; a day with one unknown spend has an unknown spend)."""
    rows = warehouse.fetch_all(
        """
        WITH d AS (
            SELECT day,
                   CASE WHEN bool_and(spend IS NOT NULL) THEN sum(spend) END AS spend,
                   sum(leads) AS leads, sum(sales) AS sales, sum(revenue) AS revenue,
                   bool_or(is_provisional) AS provisional,
                   min(cpl) AS cpl, min(roas) AS roas  -- one targetologist: its own row's
            FROM marts.targetologist_daily
            WHERE day BETWEEN %(first)s AND %(last)s
              AND (%(who)s::text IS NULL OR targetologist = %(who)s::text)
            GROUP BY day
        )
        SELECT day::text, spend, leads, sales, revenue,
               CASE WHEN %(who)s::text IS NULL THEN round(spend / nullif(leads, 0), 2)
                    ELSE cpl END,
               CASE WHEN %(who)s::text IS NULL THEN round(revenue / nullif(spend, 0), 4)
                    ELSE roas END,
               provisional
        FROM d ORDER BY day
        """,
        {"first": FIRST, "last": LAST, "who": who},
    )
    return [dict(zip(("day", *COLUMNS, "provisional"), r, strict=True)) for r in rows]


def mart_totals(days: list[dict[str, Any]]) -> dict[str, Any]:
    def total(column: str) -> Any:
        values = [d[column] for d in days]
        return None if any(v is None for v in values) else sum(values, Decimal(0))

    spend, leads, revenue = total("spend"), total("leads"), total("revenue")
    return {
        "spend": spend, "leads": leads, "sales": total("sales"), "revenue": revenue,
        "cpl": None if spend is None or not leads else rounded(spend / leads, "0.01"),
        "roas": None if not spend else rounded(revenue / spend, "0.0001"),
    }  # fmt: skip


def rounded(value: Decimal, quantum: str) -> Decimal:
    return value.quantize(Decimal(quantum), rounding="ROUND_HALF_UP")


# ---- what the page shows ----------------------------------------------------------------------
def shown(text: str) -> Decimal | None:
    text = text.strip()
    return None if text == "n/a" else Decimal(text.replace(",", ""))


def page_days(page) -> list[dict[str, Any]]:
    cells = page.eval_on_selector_all(
        "[data-testid=day-row]",
        """rows => rows.map(r => Object.fromEntries(
            [...r.querySelectorAll('td[data-testid]')].map(td => [td.dataset.testid,
                                                                td.textContent])))""",
    )
    return [
        {"day": c["day"], **{k: shown(c[k]) for k in COLUMNS},
         "provisional": c["provisional"] == "provisional"}
        for c in cells
    ]  # fmt: skip


def page_totals(page) -> dict[str, Any]:
    return {k: shown(page.inner_text(f"[data-testid=total-{k}]")) for k in COLUMNS}


def open_dashboard(browser, api: Served, token: str, who: str):
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []

    def console(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", console)
    page.goto(api.url + "/dashboard")
    page.fill("[data-testid=token-input]", token)
    page.click("[data-testid=token-submit]")
    page.wait_for_selector("#app[data-state=ready], #app[data-state=error]")
    assert page.get_attribute("#app", "data-state") == "ready", page.inner_text("#error")
    page.fill("[data-testid=month]", MONTH)
    wait_ready(page, who)
    return page, errors


def wait_ready(page, who: str) -> None:
    page.wait_for_selector(
        f"#app[data-state=ready][data-range='{FIRST}..{LAST}'][data-who='{who}']"
    )


def assert_shows_the_marts(page, warehouse, who: str | None) -> None:
    expected = mart_days(warehouse, who)
    assert expected, f"the sandbox left no rows for {who or 'anyone'} in {MONTH}"
    assert page_days(page) == expected
    assert page_totals(page) == mart_totals(expected)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("DASHBOARD_SCREENSHOTS") == "docs":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_path


def screenshot(page, folder: Path, name: str) -> None:
    path = folder / name
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path))
    assert path.stat().st_size < SCREENSHOT_LIMIT, f"{name} is {path.stat().st_size} bytes"


def test_given_tokens_when_a_month_is_picked_then_the_page_shows_the_marts(tokens, browser, shots):
    page, errors = open_dashboard(browser, tokens.api, tokens.own, tokens.targetologist)
    # a targetologist sees itself only, no picker
    assert page.is_hidden("[data-testid=targetologist]")
    assert page.inner_text("[data-testid=targetologist-fixed]").endswith(tokens.targetologist)
    assert_shows_the_marts(page, tokens.api.warehouse, tokens.targetologist)
    assert page.locator("[data-testid=day-row][data-provisional=true]").count() > 0
    assert page.is_visible("[data-testid=provisional-legend]")
    freshness = tokens.api.warehouse.fetch_all("SELECT source FROM marts.source_freshness")
    sources = {r[0] for r in freshness}
    strip = page.eval_on_selector_all(
        "[data-testid=freshness-item]", "items => items.map(i => i.dataset.source)"
    )
    assert sorted(strip) == sorted(sources) and set(sources) >= set(SOURCES)
    screenshot(page, shots, "dashboard-targetologist.png")
    page.close()

    page, admin_errors = open_dashboard(browser, tokens.api, tokens.admin, "all")
    names = page.eval_on_selector_all(
        "[data-testid=targetologist] option", "os => os.map(o => o.value)"
    )
    assert names[0] == "" and tokens.targetologist in names and "unattributed" in names
    assert_shows_the_marts(page, tokens.api.warehouse, None)  # "all": summed in the browser
    screenshot(page, shots, "dashboard-admin.png")
    page.select_option("[data-testid=targetologist]", tokens.targetologist)
    wait_ready(page, tokens.targetologist)
    assert_shows_the_marts(page, tokens.api.warehouse, tokens.targetologist)

    # a stale source as the API reports it (AmoCRM's last attempt failed): badge and sentence
    def amocrm_failed(route) -> None:
        response = route.fetch()
        body = response.json()
        for source in body["freshness"]["sources"]:
            if source["source"] == "amocrm":
                source.update(
                    status="error", stale=True, error="AmoCRM answered 402 Payment Required"
                )
        body["freshness"]["stale"] = ["amocrm"]
        route.fulfill(response=response, json=body)

    page.route("**/api/traffic-dashboard/targetologist-daily?*", amocrm_failed)
    page.click("[data-testid=apply]")
    page.wait_for_selector("[data-testid=freshness-item][data-source=amocrm][data-stale=true]")
    amocrm = page.locator("[data-testid=freshness-item][data-source=amocrm]")
    assert amocrm.locator("[data-testid=freshness-badge]").inner_text().lower() == "stale"
    assert "402 Payment Required" in amocrm.locator("[data-testid=freshness-error]").inner_text()
    page.unroute("**/api/traffic-dashboard/targetologist-daily?*")

    # a range the API refuses (422): its own sentence shown
    page.fill("[data-testid=from]", "2020-01-01")
    page.click("[data-testid=apply]")
    page.wait_for_selector("#app[data-state=error]")
    assert page.inner_text("[data-testid=error]").startswith("to: the range is")

    # a token the API refuses: said so, in one line
    page.click("[data-testid=token-forget]")
    page.fill("[data-testid=token-input]", "twd_not-a-token")
    page.click("[data-testid=token-submit]")
    page.wait_for_selector("#app[data-state=error]")
    assert page.inner_text("[data-testid=error]").startswith("Token not accepted")
    # the refused 422 and 401 are the only console errors either page logged
    assert errors == [] and [e for e in admin_errors if not {"401", "422"} & set(e.split())] == []
    page.close()


def test_given_the_router_then_page_and_own_files_only_with_a_strict_policy(monkeypatch):
    import asyncio

    import httpx
    from fastapi import FastAPI, HTTPException

    from api.dashboard import dashboard_static, router

    app = FastAPI()
    app.include_router(router)

    def get(path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://page") as client:
                return await client.get(path)

        return asyncio.run(go())

    monkeypatch.setenv("REPORTING_TZ", "Asia/Tashkent")
    page = get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta name="reporting-tz" content="Asia/Tashkent">' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "http" not in page.text  # nothing from another origin
    library = get("/dashboard/static/vendor/chart.umd.min.js")
    assert library.status_code == 200 and library.text.startswith("/*!\n * Chart.js v4.6.1")
    assert "sourceMappingURL" not in library.text
    assert get("/dashboard/static/vendor/chart.js.LICENSE.md").status_code == 200
    for path in ("dashboard.html", "vendor/SHA256SUMS", "../dashboard.py", "%2e%2e/dashboard.py",
                 "..%2fvendor_charts.sh", "nothing.js"):  # fmt: skip
        assert get(f"/dashboard/static/{path}").status_code == 404, path
    for path in ("../dashboard.py", "../../pyproject.toml", "/etc/passwd", "vendor/../../app.py"):
        with pytest.raises(HTTPException):  # however the URL was spelled on the way in
            dashboard_static(path)
    monkeypatch.setenv("REPORTING_TZ", "Mars/Olympus")
    wrong = get("/dashboard")
    assert wrong.status_code == 503 and wrong.text.startswith("REPORTING_TZ='Mars/Olympus'")

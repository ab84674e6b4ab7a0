"""The integration diagnostics of the old dashboard, made honest, plus the vendor-side ones.

Each diagnostic is one function returning a `Diagnostic` (name, status ok/warning/error,
message, details). They run as Dagster asset checks and from the command line:

    python -m checks.diagnostics            # the report's JSON; exit 0 ok, 1 warning, 2 error
    python -m checks.diagnostics --health   # {"status", "service", "timestamp", "problems"}:
                                            # the health probe (health/probe.py), exit 0/1/2

A diagnostic whose source is not configured (its variables unset, and for the ones read from
the warehouse, no load ever succeeded) says `not_configured`, naming every missing variable,
instead of judging nothing as "ok". In the report, `success` is true when every diagnostic ran
(false: one of them raised, its entry says why, as an error); `overall_status` is the worst
status, `not_configured` counting as a warning (nothing was judged there, so it is not "ok").
A malformed setting (REPORTING_TZ, DIAGNOSTICS_*, an unreachable WAREHOUSE_URL) is one line on
stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from contract.amocrm import resolve_pipelines
from contract.config import ContractError
from resources.amocrm import REFRESH_TOKEN_LIFETIME, AmoCrmResource
from resources.errors import ConfigError, SourceError
from resources.facebook import FacebookResource
from resources.settings import (
    REQUIRED_SETTINGS,
    SOURCE_NAMES,
    env,
    missing_sentence,
    missing_settings,
    reporting_tz,
    vendor_params,
)
from resources.sql_files import load_sql
from resources.supabase import BY_ID, SupabaseResource
from resources.warehouse import WarehouseResource

SERVICE = "traffic-warehouse"
# Names as the old dashboard showed them; the dashboard keys on them.
EXPRESS_WEBHOOK = "Express Course Webhook"
FLAGSHIP_WEBHOOK = "Flagship Course Webhook"
LANDING_SYNC = "Landing BD Sync"
EXPRESS_SALES = "Express Course Sales"
FLAGSHIP_SALES = "Flagship Course Sales"
ALL_SALES_TRACKING = "All Sales Tracking"
AMOCRM_API = "AmoCRM Subscription"
FACEBOOK_TOKEN = "Facebook Token"
RECONCILIATION = "Sales Reconciliation"
QUARANTINE = "Quarantine"
AMOCRM_TOKEN = "AmoCRM Token"
SUPABASE_KEYS = {"main": "Supabase Main Key", "tripwire": "Supabase Tripwire Key"}
REFRESH_TOKEN_LIFE_DAYS = REFRESH_TOKEN_LIFETIME.days


@dataclass(frozen=True)
class Thresholds:
    """When a diagnostic turns warning or error; shares are fractions of 1. Each can be set
    with DIAGNOSTICS_<NAME> (e.g. DIAGNOSTICS_TOKEN_DAYS_WARNING=45)."""

    webhook_right_pipeline_warning: float = 0.95
    webhook_right_pipeline_error: float = 0.5
    without_utm_warning: float = 0.2
    unsynced_after_minutes: int = (
        30  # later than this: a warning; more of them than last time: an error
    )
    token_days_warning: int = 30
    token_days_error: int = 7
    refresh_token_age_warning_days: int = 60
    refresh_token_age_error_days: int = 80

    @classmethod
    def from_env(cls) -> Thresholds:
        overrides: dict[str, Any] = {}
        for name, default in asdict(cls()).items():
            variable = f"DIAGNOSTICS_{name.upper()}"
            raw = env(variable)
            if raw is None:
                continue
            try:
                overrides[name] = type(default)(raw)
            except ValueError:
                raise ConfigError("settings", f"{variable}={raw!r} is not a number (default "
                                  f"{default}).") from None  # fmt: skip
        return cls(**overrides)


@dataclass
class Diagnostic:
    name: str
    status: str  # ok | warning | error | not_configured
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _webhook_figures(
    warehouse: WarehouseResource, course: str, pipeline: int | None
) -> dict[str, Any]:
    """The course's webhook figures; `correct_pipeline` counts those on `pipeline` (None: 0)."""
    template = sql.SQL(load_sql("ops/webhook_diagnostic"))  # type: ignore[arg-type]
    query = template.format(table=sql.Identifier("stg_supabase_main", f"{course}_course_sales"))
    total, correct, latest, with_utm, without = warehouse.fetch_all(query, {"pipeline": pipeline})[
        0
    ]
    return {"total_sales": total, "correct_pipeline": correct, "latest_sale": _iso(latest),
            "with_utm": with_utm, "without_utm": without}  # fmt: skip


def webhook(warehouse: WarehouseResource, course: str, limits: Thresholds) -> Diagnostic:
    """Are the course's webhook sales on the course's own AmoCRM pipeline?"""
    name = EXPRESS_WEBHOOK if course == "express" else FLAGSHIP_WEBHOOK
    try:
        pipeline = resolve_pipelines(warehouse)[course]
    except ContractError as exc:
        # the contract's mistake is the finding; the webhook's own figures still show
        figures = _webhook_figures(warehouse, course, None)
        details = {"total_sales": figures["total_sales"], "correct_pipeline": None,
                   "latest_sale": figures["latest_sale"]}  # fmt: skip
        return Diagnostic(name, "error", exc.message, details)
    figures = _webhook_figures(warehouse, course, pipeline)
    details = {k: figures[k] for k in ("total_sales", "correct_pipeline", "latest_sale")}
    total, correct = figures["total_sales"], figures["correct_pipeline"]
    if total == 0:
        return Diagnostic(name, "warning", f"No {course} webhook sales received yet", details)
    share = correct / total
    text = (
        f"{correct} of {total} {course.title()} webhook sales are on the {course.title()} pipeline"
    )
    if share < limits.webhook_right_pipeline_error:
        return Diagnostic(name, "error", f"Only {text}: the webhook writes to the wrong pipeline",
                          details)  # fmt: skip
    if share < limits.webhook_right_pipeline_warning:
        return Diagnostic(name, "warning", text, details)
    return Diagnostic(name, "ok", text, details)


def course_sales(warehouse: WarehouseResource, course: str, limits: Thresholds) -> Diagnostic:
    """How many of the course's sales carry UTM (attribution needs it)?"""
    name = EXPRESS_SALES if course == "express" else FLAGSHIP_SALES
    figures = _webhook_figures(warehouse, course, None)  # UTM figures only: no pipeline needed
    details = {k: figures[k] for k in ("total_sales", "with_utm", "without_utm", "latest_sale")}
    total, without = figures["total_sales"], figures["without_utm"]
    if total == 0:
        return Diagnostic(name, "warning", f"No {course} sales yet", details)
    text = f"{without} of {total} {course} sales have no UTM"
    status = "warning" if without / total > limits.without_utm_warning else "ok"
    return Diagnostic(name, status, text, details)


def landing_sync(warehouse: WarehouseResource, limits: Thresholds) -> Diagnostic:
    """Do landing leads reach AmoCRM? Late ones are a warning, a backlog an error.

    "Late" is measured against the newest lead, the data's own clock: a paused landing page
    must not turn every old unsynced lead into an alarm.
    """
    total, synced, latest, late = warehouse.fetch_all(
        "SELECT count(*), count(*) FILTER (WHERE synced_to_amocrm), max(created_at),"
        " count(*) FILTER (WHERE NOT synced_to_amocrm AND created_at < (SELECT max(created_at)"
        "   FROM stg_supabase_main.landing_leads WHERE _deleted_at IS NULL)"
        "   - make_interval(mins => %s))"
        " FROM stg_supabase_main.landing_leads WHERE _deleted_at IS NULL",
        (limits.unsynced_after_minutes,),
    )[0]
    details = {"total_leads": total, "synced": synced, "not_synced": total - synced,
               "latest_lead": _iso(latest), "late_not_synced": late}  # fmt: skip
    previous = warehouse.fetch_all(
        "SELECT (details ->> 'late_not_synced')::bigint FROM marts.integration_health"
        " WHERE name = %s",
        (LANDING_SYNC,),
    )
    text = f"{synced} of {total} landing leads synced to AmoCRM; {late} late"
    if previous and previous[0][0] is not None and late > previous[0][0]:
        return Diagnostic(LANDING_SYNC, "error", f"{text}, up from {previous[0][0]}: the sync "
                          "is falling behind", details)  # fmt: skip
    return Diagnostic(LANDING_SYNC, "warning" if late else "ok", text, details)


def all_sales_tracking(traffic: SupabaseResource) -> Diagnostic:
    """Can the Traffic project be read? The vendor's message and hint pass through."""
    try:
        with traffic.open() as api:
            page = next(iter(api.scan("all_sales_tracking", BY_ID, None, columns="id")), [])
    except SourceError as exc:
        return Diagnostic(ALL_SALES_TRACKING, "error", exc.message, {"reachable": False})
    return Diagnostic(ALL_SALES_TRACKING, "ok", "Traffic project reachable",
                      {"reachable": True, "rows_seen": len(page)})  # fmt: skip


def amocrm_api(amocrm: AmoCrmResource, warehouse: WarehouseResource) -> Diagnostic:
    """Does AmoCRM answer (the report's 402 is named as such)?"""
    try:
        with amocrm.open(warehouse, warehouse.last_success("amocrm")) as client:
            account = client.get("/api/v4/account") or {}
    except SourceError as exc:
        return Diagnostic(AMOCRM_API, "error", exc.message, {"reachable": False})
    return Diagnostic(AMOCRM_API, "ok", "AmoCRM API answers",
                      {"reachable": True, "account": account.get("subdomain")})  # fmt: skip


def facebook_token(facebook: FacebookResource, limits: Thresholds) -> Diagnostic:
    """Is FACEBOOK_ACCESS_TOKEN valid, with ads_read, and far enough from expiry?"""
    try:
        with facebook.open() as client:
            data = client.debug_token()
            now = client.server_now()
    except SourceError as exc:
        return Diagnostic(FACEBOOK_TOKEN, "error", exc.message, {"is_valid": False})
    scopes = data.get("scopes") or []
    expires = data.get("expires_at") or 0
    days = None if not expires else round((expires - now.timestamp()) / 86400)
    details = {"is_valid": bool(data.get("is_valid")), "days_to_expiry": days, "scopes": scopes}
    if not data.get("is_valid"):
        return Diagnostic(FACEBOOK_TOKEN, "error", "The Facebook token is not valid", details)
    if "ads_read" not in scopes:
        return Diagnostic(FACEBOOK_TOKEN, "error", "The Facebook token lacks ads_read", details)
    if days is None:
        return Diagnostic(FACEBOOK_TOKEN, "ok", "The Facebook token never expires", details)
    text = f"The Facebook token expires in {days} days"
    if days < limits.token_days_error:
        return Diagnostic(FACEBOOK_TOKEN, "error", text, details)
    if days < limits.token_days_warning:
        return Diagnostic(FACEBOOK_TOKEN, "warning", text, details)
    return Diagnostic(FACEBOOK_TOKEN, "ok", text, details)


def reconciliation(warehouse: WarehouseResource) -> Diagnostic:
    """Do AmoCRM's won deals, the webhook sales and all_sales_tracking agree, per funnel?"""
    try:
        pipelines = resolve_pipelines(warehouse)
    except ContractError as exc:
        return Diagnostic(RECONCILIATION, "error", exc.message, {})
    text = load_sql("ops/sales_reconciliation")
    rows = warehouse.fetch_all(text, {**pipelines, **vendor_params(text)})
    details: dict[str, Any] = {
        funnel: {"amocrm_won": won, "webhook_sales": hooks, "tracked_sales": tracked,
                 "won_without_webhook": missing, "webhook_not_tracked": untracked}
        for funnel, won, hooks, tracked, missing, untracked in rows
    }  # fmt: skip
    text = load_sql("ops/sales_reconciliation_days")
    days = warehouse.fetch_all(text, {**pipelines, **vendor_params(text), "tz": reporting_tz()})
    # a sale reported a few seconds after midnight moves a count across days; they are listed
    details["days_disagreeing"] = [
        {"funnel": f, "day": d.isoformat(), "amocrm_won": w, "webhook_sales": h, "tracked": t}
        for f, d, w, h, t in days[:30]
    ]
    gaps = [
        f"{f}: {d['won_without_webhook']} won deals without a webhook, "
        f"{d['webhook_not_tracked']} sales not tracked"
        for f, d in details.items()
        if f != "days_disagreeing" and (d["won_without_webhook"] or d["webhook_not_tracked"])
    ]
    if gaps:
        return Diagnostic(RECONCILIATION, "warning", "; ".join(gaps), details)
    return Diagnostic(RECONCILIATION, "ok", "AmoCRM, webhooks and tracking agree", details)


def quarantine(warehouse: WarehouseResource) -> Diagnostic:
    """Records refused by validation: any in the last day is a warning, a growing pile an error."""
    day, before = warehouse.fetch_all(
        "SELECT count(*) FILTER (WHERE quarantined_at > now() - interval '1 day'),"
        " count(*) FILTER (WHERE quarantined_at BETWEEN now() - interval '2 days'"
        "   AND now() - interval '1 day') FROM ops.quarantine"
    )[0]
    per_source = dict(warehouse.fetch_all(
        "SELECT source || '.' || entity, count(*) FROM ops.quarantine"
        " WHERE quarantined_at > now() - interval '1 day' GROUP BY 1"))  # fmt: skip
    details = {"last_day": day, "day_before": before, "by_table": per_source}
    if day > before and before > 0:
        return Diagnostic(QUARANTINE, "error", f"{day} records quarantined today, up from "
                          f"{before}", details)  # fmt: skip
    if day:
        return Diagnostic(QUARANTINE, "warning", f"{day} records quarantined today", details)
    return Diagnostic(QUARANTINE, "ok", "No record quarantined today", details)


def amocrm_token(warehouse: WarehouseResource, limits: Thresholds) -> Diagnostic:
    """How old is the stored AmoCRM refresh token (it dies after three months unused)?"""
    rows = warehouse.fetch_all(
        "SELECT refresh_token IS NOT NULL, extract(epoch FROM now() - refresh_issued_at) / 86400,"
        " access_expires_at < now() FROM ops.oauth_tokens WHERE integration = 'amocrm'"
    )
    if not rows:
        return Diagnostic(AMOCRM_TOKEN, "warning", "No AmoCRM token stored yet", {})
    has_refresh, age, expired = rows[0]
    days = int(age or 0)
    details = {"refresh_token_age_days": days, "refresh_token_life_days": REFRESH_TOKEN_LIFE_DAYS,
               "access_token_expired": bool(expired), "long_lived": not has_refresh}  # fmt: skip
    if not has_refresh:
        return Diagnostic(AMOCRM_TOKEN, "ok", "A long-lived AmoCRM token is in use", details)
    text = f"The AmoCRM refresh token is {days} of {REFRESH_TOKEN_LIFE_DAYS} days old"
    if days >= limits.refresh_token_age_error_days:
        return Diagnostic(AMOCRM_TOKEN, "error", text, details)
    if days >= limits.refresh_token_age_warning_days:
        return Diagnostic(AMOCRM_TOKEN, "warning", text, details)
    return Diagnostic(AMOCRM_TOKEN, "ok", text, details)


def supabase_key(project: SupabaseResource, name: str, table: str) -> Diagnostic:
    """Does the project's key open its REST API?"""
    try:
        with project.open() as api:
            next(iter(api.scan(table, BY_ID, None, columns="id")), [])
    except SourceError as exc:
        return Diagnostic(name, "error", exc.message, {"valid": False})
    return Diagnostic(name, "ok", f"{project.source} key accepted", {"valid": True})


NOT_CONFIGURED = "not_configured"
# Which sources each diagnostic judges, and whether it asks the vendor (then its source's
# settings must be set) or reads what the warehouse holds (then a load must once have succeeded).
JUDGES: dict[str, tuple[tuple[str, ...], bool]] = {
    EXPRESS_WEBHOOK: (("supabase_main",), False),
    FLAGSHIP_WEBHOOK: (("supabase_main",), False),
    LANDING_SYNC: (("supabase_main",), False),
    EXPRESS_SALES: (("supabase_main",), False),
    FLAGSHIP_SALES: (("supabase_main",), False),
    ALL_SALES_TRACKING: (("supabase_traffic",), True),
    AMOCRM_API: (("amocrm",), True),
    FACEBOOK_TOKEN: (("facebook",), True),
    RECONCILIATION: (("amocrm", "supabase_main", "supabase_traffic"), False),
    QUARANTINE: ((), False),
    AMOCRM_TOKEN: (("amocrm",), False),
    SUPABASE_KEYS["main"]: (("supabase_main",), True),
    SUPABASE_KEYS["tripwire"]: (("supabase_tripwire",), True),
}


def amocrm_token_stored(warehouse: WarehouseResource) -> bool:
    rows = warehouse.fetch_all("SELECT 1 FROM ops.oauth_tokens WHERE integration = 'amocrm'")
    return bool(rows)


def not_configured(warehouse: WarehouseResource, name: str) -> Diagnostic | None:
    """`not_configured` naming every missing variable of the diagnostic's sources, or None when
    it can judge. One read from the warehouse is judged as long as its source once loaded."""
    sources, asks_vendor = JUDGES[name]
    stored = amocrm_token_stored(warehouse) if "amocrm" in sources else False
    sentences, missing_all = [], []
    for source in sources:
        missing = missing_settings(source, token_stored=stored)
        if not missing or (not asks_vendor and warehouse.last_success(source) is not None):
            continue
        sentences.append(missing_sentence(source, missing))
        missing_all += missing
    if not sentences:
        return None
    return Diagnostic(name, NOT_CONFIGURED, " ".join(sentences),
                      {"missing": missing_all, "sources": [SOURCE_NAMES[s] for s in sources
                                                           if s in REQUIRED_SETTINGS]})  # fmt: skip


def run_all(resources: dict[str, Any], limits: Thresholds | None = None) -> list[Diagnostic]:
    limits = limits or Thresholds.from_env()
    warehouse: WarehouseResource = resources["warehouse"]
    checks: dict[str, Callable[[], Diagnostic]] = {
        EXPRESS_WEBHOOK: lambda: webhook(warehouse, "express", limits),
        FLAGSHIP_WEBHOOK: lambda: webhook(warehouse, "flagship", limits),
        LANDING_SYNC: lambda: landing_sync(warehouse, limits),
        EXPRESS_SALES: lambda: course_sales(warehouse, "express", limits),
        FLAGSHIP_SALES: lambda: course_sales(warehouse, "flagship", limits),
        ALL_SALES_TRACKING: lambda: all_sales_tracking(resources["supabase_traffic"]),
        AMOCRM_API: lambda: amocrm_api(resources["amocrm"], warehouse),
        FACEBOOK_TOKEN: lambda: facebook_token(resources["facebook"], limits),
        RECONCILIATION: lambda: reconciliation(warehouse),
        QUARANTINE: lambda: quarantine(warehouse),
        AMOCRM_TOKEN: lambda: amocrm_token(warehouse, limits),
        SUPABASE_KEYS["main"]: lambda: supabase_key(
            resources["supabase_main"], SUPABASE_KEYS["main"], "landing_leads"
        ),
        SUPABASE_KEYS["tripwire"]: lambda: supabase_key(
            resources["supabase_tripwire"], SUPABASE_KEYS["tripwire"], "tripwire_users"
        ),
    }
    results = []
    for name, check in checks.items():
        try:
            results.append(not_configured(warehouse, name) or check())
        except SourceError as exc:  # a setting or a vendor: its own sentence is the finding
            results.append(Diagnostic(name, "error", exc.message, {}))
        except psycopg.OperationalError:
            raise  # the warehouse itself: the command's one line, not thirteen
        except Exception as exc:  # noqa: BLE001 - the report names it and goes on
            # only the type: a library's message may quote a URL with a token in it
            kind = type(exc).__name__
            results.append(Diagnostic(name, "error", f"{name} could not run ({kind}); the other "
                                      "diagnostics did", {"exception": kind}))  # fmt: skip
    return results


def store(warehouse: WarehouseResource, diagnostics: list[Diagnostic]) -> None:
    """Keep the latest result of each in marts.integration_health; a diagnostic that cannot
    judge (not_configured) removes its old verdict rather than leaving it standing."""
    with warehouse.connection() as conn:
        for d in diagnostics:
            if d.status == NOT_CONFIGURED:
                conn.execute("DELETE FROM marts.integration_health WHERE name = %s", (d.name,))
                continue
            conn.execute(
                "INSERT INTO marts.integration_health (name, status, message, details)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " status = EXCLUDED.status, message = EXCLUDED.message,"
                " details = EXCLUDED.details, checked_at = now()",
                (d.name, d.status, d.message, json.dumps(d.details)),
            )


def report(diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """The old dashboard's JSON shape, plus `not_configured` in the summary.

    `success`: every diagnostic ran (the report is complete), not that all is well;
    `overall_status`: the worst status, `not_configured` counting as a warning.
    """
    summary = {"total": len(diagnostics)} | {
        s: sum(1 for d in diagnostics if d.status == s)
        for s in ("ok", "warning", "error", NOT_CONFIGURED)
    }
    overall = ("error" if summary["error"] else
               "warning" if summary["warning"] or summary[NOT_CONFIGURED] else "ok")  # fmt: skip
    return {
        "success": all(d.status != "error" or "exception" not in d.details for d in diagnostics),
        "data": {
            "overall_status": overall,
            "diagnostics": [asdict(d) for d in diagnostics],
            "summary": summary,
        },
    }


EXIT_CODES = {"ok": 0, "warning": 1, "error": 2}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.diagnostics")
    parser.add_argument("--health", action="store_true", help="the health probe's short object")
    args = parser.parse_args()
    if args.health:
        # the daemon, the runs and the sources' freshness, without calling any vendor
        from health.probe import probe_environment

        health = probe_environment()
        print(json.dumps({"status": "ok" if health.healthy else "error", "service": SERVICE,
                          "timestamp": health.checked_at.isoformat(),
                          "problems": health.problems}, ensure_ascii=False, indent=2))  # fmt: skip
        return health.exit_code
    import refresh

    return refresh.configuration_errors(diagnose)


def diagnose() -> int:
    import refresh
    from resources import embedded_pg

    with embedded_pg.owned_server():
        refresh.prepare_environment()
        reporting_tz()
        limits = Thresholds.from_env()
        from definitions import resources

        warehouse = WarehouseResource(url=env("WAREHOUSE_URL") or "")
        warehouse.apply_ddl()
        diagnostics = run_all({**resources, "warehouse": warehouse}, limits)
        store(warehouse, diagnostics)
    result = report(diagnostics)
    overall = result["data"]["overall_status"]
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_CODES[overall]


if __name__ == "__main__":
    sys.exit(main())

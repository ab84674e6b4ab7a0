"""The integration diagnostics of the old dashboard, made honest, plus the vendor-side ones.

Each diagnostic is one function returning a `Diagnostic` (name, status ok/warning/error,
message, details): a pure reading of the warehouse, but for the few that exist to probe a vendor
(All Sales Tracking, AmoCRM Subscription, the Supabase keys), which ask it. `DIAGNOSTICS` is
their one registry: the asset checks (checks/asset_checks.py) and the command line
(`make diagnose`, commands/diagnose.py) are both built from it.

A diagnostic whose source is not configured (its variables unset, and for the ones read from
the warehouse, no load ever succeeded) says `not_configured`, naming every missing variable,
instead of judging nothing as "ok". In the report, `success` is true when every diagnostic ran
(false: one of them raised, its entry says why, as an error); `overall_status` is the worst
status, `not_configured` counting as a warning (nothing was judged there, so it is not "ok").
A malformed setting (REPORTING_TZ, DIAGNOSTICS_*, an unreachable WAREHOUSE_URL) is one line on
stderr and exit 2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from contract.amocrm import resolve_pipelines
from contract.config import ContractError
from contract.model_params import vendor_params
from resources.amocrm import REFRESH_TOKEN_LIFETIME, AmoCrmResource
from resources.errors import ConfigError, SourceError
from resources.settings import SettingsResource, env, not_configured, reporting_tz
from resources.sql_files import load_sql
from resources.supabase import BY_ID, SupabaseResource, variable
from resources.warehouse import WarehouseResource

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


def landing_sync(
    warehouse: WarehouseResource, limits: Thresholds, previous_late: int | None = None
) -> Diagnostic:
    """Do landing leads reach AmoCRM? Late ones are a warning, more than at the previous check
    (`previous_late`, from that check's own record) an error: a backlog.

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
    text = f"{synced} of {total} landing leads synced to AmoCRM; {late} late"
    if previous_late is not None and late > previous_late:
        return Diagnostic(LANDING_SYNC, "error", f"{text}, up from {previous_late}: the sync "
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


def facebook_token(warehouse: WarehouseResource, limits: Thresholds) -> Diagnostic:
    """Is FACEBOOK_ACCESS_TOKEN valid, with ads_read, and far enough from expiry? Read from
    raw_facebook.token_info (debug_token's answer at the last load); a failed load of it is
    the finding, in its own sentence."""
    failed = _failed_attempt(warehouse, "facebook", "token_info")
    if failed is not None:
        return Diagnostic(FACEBOOK_TOKEN, "error", failed, {"is_valid": False})
    rows = warehouse.fetch_all(
        "SELECT is_valid, scopes, round(extract(epoch FROM expires_at - checked_at) / 86400)"
        " FROM raw_facebook.token_info WHERE _deleted_at IS NULL"
        " ORDER BY _loaded_at DESC LIMIT 1"
    )
    if not rows:
        return Diagnostic(FACEBOOK_TOKEN, "warning", "The Facebook token was not checked yet", {})
    valid, scopes, to_expiry = rows[0]
    days = None if to_expiry is None else int(to_expiry)
    details = {"is_valid": bool(valid), "days_to_expiry": days, "scopes": scopes}
    if not valid:
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


def _failed_attempt(warehouse: WarehouseResource, source: str, entity: str) -> str | None:
    """The error of the entity's latest load attempt when that attempt failed, else None."""
    rows = warehouse.fetch_all(
        "SELECT error FROM ops.source_attempts WHERE source = %s AND entity = %s"
        " ORDER BY attempted_at DESC, id DESC LIMIT 1",
        (source, entity),
    )
    return rows[0][0] if rows and rows[0][0] is not None else None


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


@dataclass(frozen=True)
class Inputs:
    """What a diagnostic reads: the warehouse; the resources of the ones that probe a vendor;
    the thresholds; the details of its own previous verdict (as the check recorded it), if any."""

    warehouse: WarehouseResource
    resources: Any  # {key: resource}, or a Dagster context's resources
    limits: Thresholds
    previous: Mapping[str, Any] | None = None

    def resource(self, key: str) -> Any:
        if isinstance(self.resources, Mapping):
            return self.resources[key]
        return getattr(self.resources, key)


@dataclass(frozen=True)
class Spec:
    """One diagnostic: the asset whose check it is, the sources it judges, the resource it
    probes (None: it reads the warehouse, judged once its sources loaded), whether it is also
    evaluated when its source's load fails (a credential or a vendor: the UI shows why), what it
    measures with its thresholds (the check's description in the UI), and the function."""

    name: str
    asset: tuple[str, str]
    sources: tuple[str, ...]
    probe: str | None
    on_failure: bool
    measures: str
    run: Callable[[Inputs], Diagnostic]


T = Thresholds()  # the defaults, for the descriptions; each run reads DIAGNOSTICS_* afresh
PCT = "{:.0%}".format
MAIN = "raw_supabase_main"


def _webhook_text(course: str) -> str:
    return (
        f"share of {course} webhook sales (stg_supabase_main.{course}_course_sales) on the "
        f"contract's {course} pipeline: warning under {PCT(T.webhook_right_pipeline_warning)}, "
        f"error under {PCT(T.webhook_right_pipeline_error)} (DIAGNOSTICS_WEBHOOK_RIGHT_PIPELINE_"
        "WARNING/_ERROR); none received yet: warning."
    )


def _sales_text(course: str) -> str:
    return (
        f"share of {course} sales without UTM (attribution needs it): warning over "
        f"{PCT(T.without_utm_warning)} (DIAGNOSTICS_WITHOUT_UTM_WARNING); none yet: warning."
    )


def _key_text(project: str) -> str:
    return (
        f"does {variable(project, 'service_role_key')} (or {variable(project, 'anon_key')}) open "
        "the project's REST API: error with Supabase's own message when it does not. Also "
        "evaluated when the load fails."
    )


def _previous_late(i: Inputs) -> int | None:
    value = (i.previous or {}).get("late_not_synced")
    return None if value in (None, "") else int(value)


VENDOR_NOTE = " Also evaluated when the load fails."
DIAGNOSTICS: tuple[Spec, ...] = (
    Spec(EXPRESS_WEBHOOK, (MAIN, "express_course_sales"), ("supabase_main",), None, False,
         _webhook_text("express"), lambda i: webhook(i.warehouse, "express", i.limits)),
    Spec(FLAGSHIP_WEBHOOK, (MAIN, "flagship_course_sales"), ("supabase_main",), None, False,
         _webhook_text("flagship"), lambda i: webhook(i.warehouse, "flagship", i.limits)),
    Spec(LANDING_SYNC, (MAIN, "landing_leads"), ("supabase_main",), None, False,
         f"landing leads not synced to AmoCRM {T.unsynced_after_minutes} min after the newest "
         "lead (DIAGNOSTICS_UNSYNCED_AFTER_MINUTES): any is a warning, more than at the last "
         "check an error.",
         lambda i: landing_sync(i.warehouse, i.limits, _previous_late(i))),
    Spec(EXPRESS_SALES, (MAIN, "express_course_sales"), ("supabase_main",), None, False,
         _sales_text("express"), lambda i: course_sales(i.warehouse, "express", i.limits)),
    Spec(FLAGSHIP_SALES, (MAIN, "flagship_course_sales"), ("supabase_main",), None, False,
         _sales_text("flagship"), lambda i: course_sales(i.warehouse, "flagship", i.limits)),
    Spec(ALL_SALES_TRACKING, ("raw_supabase_traffic", "all_sales_tracking"),
         ("supabase_traffic",), "supabase_traffic", True,
         "can the Traffic project's all_sales_tracking be read: error with the vendor's message "
         "and hint when not." + VENDOR_NOTE,
         lambda i: all_sales_tracking(i.resource("supabase_traffic"))),
    Spec(AMOCRM_API, ("raw_amocrm", "leads"), ("amocrm",), "amocrm", True,
         "does AmoCRM's API answer GET /api/v4/account: error on any refusal, 402 Payment "
         "Required named as the unpaid subscription." + VENDOR_NOTE,
         lambda i: amocrm_api(i.resource("amocrm"), i.warehouse)),
    Spec(FACEBOOK_TOKEN, ("raw_facebook", "token_info"), ("facebook",), None, True,
         f"FACEBOOK_ACCESS_TOKEN as debug_token answered at the last load "
         f"(raw_facebook.token_info): invalid or without ads_read is an error; expiry under "
         f"{T.token_days_warning} days a warning, under {T.token_days_error} an error "
         "(DIAGNOSTICS_TOKEN_DAYS_WARNING/_ERROR); that load failing is an error with its "
         "reason." + VENDOR_NOTE,
         lambda i: facebook_token(i.warehouse, i.limits)),
    Spec(RECONCILIATION, ("core", "sales"), ("amocrm", "supabase_main", "supabase_traffic"),
         None, False,
         "AmoCRM won deals vs webhook sales vs all_sales_tracking per funnel: any won deal "
         "without a webhook or sale not tracked is a warning; the disagreeing days are listed.",
         lambda i: reconciliation(i.warehouse)),
    Spec(QUARANTINE, ("marts", "source_freshness"), (), None, False,
         "records refused by validation (ops.quarantine): any in the last 24 h is a warning, "
         "more than in the 24 h before an error.",
         lambda i: quarantine(i.warehouse)),
    Spec(AMOCRM_TOKEN, ("raw_amocrm", "leads"), ("amocrm",), None, True,
         f"age of the stored AmoCRM refresh token (it dies after {REFRESH_TOKEN_LIFE_DAYS} days "
         f"unused): warning from {T.refresh_token_age_warning_days} days, error from "
         f"{T.refresh_token_age_error_days} (DIAGNOSTICS_REFRESH_TOKEN_AGE_WARNING_DAYS/_ERROR_"
         "DAYS); none stored: warning." + VENDOR_NOTE,
         lambda i: amocrm_token(i.warehouse, i.limits)),
    Spec(SUPABASE_KEYS["main"], (MAIN, "landing_leads"), ("supabase_main",), "supabase_main",
         True, _key_text("main"),
         lambda i: supabase_key(i.resource("supabase_main"), SUPABASE_KEYS["main"],
                                "landing_leads")),
    Spec(SUPABASE_KEYS["tripwire"], ("raw_supabase_tripwire", "tripwire_users"),
         ("supabase_tripwire",), "supabase_tripwire", True, _key_text("tripwire"),
         lambda i: supabase_key(i.resource("supabase_tripwire"), SUPABASE_KEYS["tripwire"],
                                "tripwire_users")),
)  # fmt: skip
BY_NAME: dict[str, Spec] = {spec.name: spec for spec in DIAGNOSTICS}
# Which sources each diagnostic judges, and whether it asks the vendor (then its source's
# settings must be set) or reads what the warehouse holds (then a load must once have succeeded).
JUDGES: dict[str, tuple[tuple[str, ...], bool]] = {
    spec.name: (spec.sources, spec.probe is not None) for spec in DIAGNOSTICS
}


def unconfigured(inputs: Inputs, name: str) -> Diagnostic | None:
    """`not_configured` naming every missing variable of the diagnostic's sources (each source's
    resource declares what it needs), or None when it can judge. One read from the warehouse is
    judged as long as its source once loaded."""
    sources, asks_vendor = JUDGES[name]
    resources: list[SettingsResource] = [inputs.resource(source) for source in sources]
    sentences, missing_all = [], []
    for source, resource in zip(sources, resources, strict=True):
        missing = resource.missing(inputs.warehouse)
        if not missing or (not asks_vendor and inputs.warehouse.last_success(source) is not None):
            continue
        sentences.append(not_configured(resource.source, missing))
        missing_all += list(missing)
    if not sentences:
        return None
    details = {"missing": missing_all, "sources": [resource.source for resource in resources]}
    return Diagnostic(name, NOT_CONFIGURED, " ".join(sentences), details)


def evaluate(spec: Spec, inputs: Inputs) -> Diagnostic:
    """The diagnostic's verdict, or `not_configured` when its sources cannot be judged."""
    return unconfigured(inputs, spec.name) or spec.run(inputs)


def run_all(
    resources: Mapping[str, Any],
    limits: Thresholds | None = None,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Diagnostic]:
    """Every diagnostic of the registry; `previous`: {name: its previous verdict's details}."""
    limits = limits or Thresholds.from_env()
    warehouse: WarehouseResource = resources["warehouse"]
    results = []
    for spec in DIAGNOSTICS:
        inputs = Inputs(warehouse, resources, limits, (previous or {}).get(spec.name))
        try:
            results.append(evaluate(spec, inputs))
        except SourceError as exc:  # a setting or a vendor: its own sentence is the finding
            results.append(Diagnostic(spec.name, "error", exc.message, {}))
        except psycopg.OperationalError:
            raise  # the warehouse itself: the command's one line, not thirteen
        except Exception as exc:  # noqa: BLE001 - the report names it and goes on
            # only the type: a library's message may quote a URL with a token in it
            kind = type(exc).__name__
            text = f"{spec.name} could not run ({kind}); the other diagnostics did"
            results.append(Diagnostic(spec.name, "error", text, {"exception": kind}))
    return results


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

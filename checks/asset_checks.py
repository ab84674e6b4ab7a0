"""The diagnostics as Dagster asset checks on the raw assets they judge: each runs after its
asset loads, shows its details as metadata in the UI, and keeps marts.integration_health
current. A failed check does not fail the run; the alert sensor reads check evaluations."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from checks.diagnostics import (
    ALL_SALES_TRACKING,
    AMOCRM_API,
    AMOCRM_TOKEN,
    EXPRESS_SALES,
    EXPRESS_WEBHOOK,
    FACEBOOK_TOKEN,
    FLAGSHIP_SALES,
    FLAGSHIP_WEBHOOK,
    JUDGES,
    LANDING_SYNC,
    QUARANTINE,
    RECONCILIATION,
    REFRESH_TOKEN_LIFE_DAYS,
    SUPABASE_KEYS,
    Diagnostic,
    Thresholds,
    all_sales_tracking,
    amocrm_api,
    amocrm_token,
    course_sales,
    facebook_token,
    landing_sync,
    not_configured,
    quarantine,
    reconciliation,
    store,
    supabase_key,
    webhook,
)
from resources.warehouse import WarehouseResource

SEVERITY = {"warning": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


def check_result(diagnostic: Diagnostic) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"message": diagnostic.message, "status": diagnostic.status}
    metadata |= {k: v if v is not None else "" for k, v in diagnostic.details.items()}
    metadata = {k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v
                for k, v in metadata.items()}  # fmt: skip
    return dg.AssetCheckResult(
        passed=diagnostic.status == "ok",
        severity=SEVERITY.get(diagnostic.status, dg.AssetCheckSeverity.WARN),
        description=diagnostic.message,
        metadata=metadata,
    )


def diagnostic_check(
    asset: list[str],
    name: str,
    resource_keys: set[str],
    run: Callable[[Any], Diagnostic],
    measures: str,
) -> dg.AssetChecksDefinition:
    """The check `name` on `asset`; `measures` says what it measures and its thresholds (the
    UI's description). A source not configured is a failed check naming every variable."""

    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name=check_name(name),
        description=f"{name}: {measures}",
        required_resource_keys={"warehouse", *resource_keys},
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        warehouse: WarehouseResource = context.resources.warehouse
        diagnostic = not_configured(warehouse, name) or run(context.resources)
        store(warehouse, [diagnostic])
        return check_result(diagnostic)

    return _check


def check_name(name: str) -> str:
    return name.lower().replace(" ", "_")


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
        f"does SUPABASE_{project.upper()}_SERVICE_ROLE_KEY (or _ANON_KEY) open the project's "
        "REST API: error with Supabase's own message when it does not. Also evaluated when the "
        "load fails."
    )


VENDOR_NOTE = " Also evaluated when the load fails."
# (asset, name, resources besides the warehouse, the diagnostic, what it measures)
SPECS: list[tuple[list[str], str, set[str], Callable[[Any], Diagnostic], str]] = [
    ([MAIN, "express_course_sales"], EXPRESS_WEBHOOK, set(),
     lambda r: webhook(r.warehouse, "express", Thresholds.from_env()), _webhook_text("express")),
    ([MAIN, "flagship_course_sales"], FLAGSHIP_WEBHOOK, set(),
     lambda r: webhook(r.warehouse, "flagship", Thresholds.from_env()), _webhook_text("flagship")),
    ([MAIN, "landing_leads"], LANDING_SYNC, set(),
     lambda r: landing_sync(r.warehouse, Thresholds.from_env()),
     f"landing leads not synced to AmoCRM {T.unsynced_after_minutes} min after the newest lead "
     "(DIAGNOSTICS_UNSYNCED_AFTER_MINUTES): any is a warning, more than at the last check an "
     "error."),
    ([MAIN, "express_course_sales"], EXPRESS_SALES, set(),
     lambda r: course_sales(r.warehouse, "express", Thresholds.from_env()), _sales_text("express")),
    ([MAIN, "flagship_course_sales"], FLAGSHIP_SALES, set(),
     lambda r: course_sales(r.warehouse, "flagship", Thresholds.from_env()),
     _sales_text("flagship")),
    (["raw_supabase_traffic", "all_sales_tracking"], ALL_SALES_TRACKING, {"supabase_traffic"},
     lambda r: all_sales_tracking(r.supabase_traffic),
     "can the Traffic project's all_sales_tracking be read: error with the vendor's message "
     "and hint when not." + VENDOR_NOTE),
    (["raw_amocrm", "leads"], AMOCRM_API, {"amocrm"},
     lambda r: amocrm_api(r.amocrm, r.warehouse),
     "does AmoCRM's API answer GET /api/v4/account: error on any refusal, 402 Payment Required "
     "named as the unpaid subscription." + VENDOR_NOTE),
    (["raw_facebook", "token_info"], FACEBOOK_TOKEN, {"facebook"},
     lambda r: facebook_token(r.facebook, Thresholds.from_env()),
     f"FACEBOOK_ACCESS_TOKEN by debug_token: invalid or without ads_read is an error; expiry "
     f"under {T.token_days_warning} days a warning, under {T.token_days_error} an error "
     "(DIAGNOSTICS_TOKEN_DAYS_WARNING/_ERROR)." + VENDOR_NOTE),
    (["core", "sales"], RECONCILIATION, set(), lambda r: reconciliation(r.warehouse),
     "AmoCRM won deals vs webhook sales vs all_sales_tracking per funnel: any won deal without "
     "a webhook or sale not tracked is a warning; the disagreeing days are listed."),
    (["marts", "source_freshness"], QUARANTINE, set(), lambda r: quarantine(r.warehouse),
     "records refused by validation (ops.quarantine): any in the last 24 h is a warning, more "
     "than in the 24 h before an error."),
    (["raw_amocrm", "leads"], AMOCRM_TOKEN, set(),
     lambda r: amocrm_token(r.warehouse, Thresholds.from_env()),
     f"age of the stored AmoCRM refresh token (it dies after {REFRESH_TOKEN_LIFE_DAYS} days "
     f"unused): warning from {T.refresh_token_age_warning_days} days, error from "
     f"{T.refresh_token_age_error_days} (DIAGNOSTICS_REFRESH_TOKEN_AGE_WARNING_DAYS/_ERROR_"
     "DAYS); none stored: warning." + VENDOR_NOTE),
    ([MAIN, "landing_leads"], SUPABASE_KEYS["main"], {"supabase_main"},
     lambda r: supabase_key(r.supabase_main, SUPABASE_KEYS["main"], "landing_leads"),
     _key_text("main")),
    (["raw_supabase_tripwire", "tripwire_users"], SUPABASE_KEYS["tripwire"],
     {"supabase_tripwire"},
     lambda r: supabase_key(r.supabase_tripwire, SUPABASE_KEYS["tripwire"], "tripwire_users"),
     _key_text("tripwire")),
]  # fmt: skip
diagnostic_checks = [diagnostic_check(*spec) for spec in SPECS]
# Credentials and vendors: judged by asking the vendor, not by what loaded, so they also run
# when their source's load fails (and the check itself is skipped by Dagster as downstream of
# the failed step): the UI shows why, not "Execution failed".
VENDOR_CHECKS = {ALL_SALES_TRACKING, AMOCRM_API, FACEBOOK_TOKEN, AMOCRM_TOKEN,
                 *SUPABASE_KEYS.values()}  # fmt: skip
_reported: set[tuple[str, str]] = set()  # (run id, check): once per run, however many steps fail


def report_vendor_checks(context: dg.AssetExecutionContext, source: str) -> None:
    """After a step of `source` failed: evaluate its credential and vendor diagnostics now and
    record them as the checks' evaluations (and in marts.integration_health)."""
    warehouse: WarehouseResource = context.resources.warehouse
    for asset, name, _keys, run, _ in SPECS:
        if name not in VENDOR_CHECKS or JUDGES[name][0] != (source,):
            continue
        if (context.run.run_id, name) in _reported:
            continue
        _reported.add((context.run.run_id, name))
        diagnostic = not_configured(warehouse, name) or run(context.resources)
        store(warehouse, [diagnostic])
        result = check_result(diagnostic)
        context.instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset),
                check_name=check_name(name),
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
            )
        )

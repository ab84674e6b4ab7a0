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
    LANDING_SYNC,
    QUARANTINE,
    RECONCILIATION,
    SUPABASE_KEYS,
    Diagnostic,
    Thresholds,
    all_sales_tracking,
    amocrm_api,
    amocrm_token,
    course_sales,
    facebook_token,
    landing_sync,
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
    asset: list[str], name: str, resource_keys: set[str], run: Callable[[Any], Diagnostic]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name=name.lower().replace(" ", "_"),
        description=f"{name}: the old dashboard's diagnostic, with honest thresholds.",
        required_resource_keys={"warehouse", *resource_keys},
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        diagnostic = run(context.resources)
        warehouse: WarehouseResource = context.resources.warehouse
        store(warehouse, [diagnostic])
        return check_result(diagnostic)

    return _check


MAIN = "raw_supabase_main"
diagnostic_checks = [
    diagnostic_check([MAIN, "express_course_sales"], EXPRESS_WEBHOOK, set(),
                     lambda r: webhook(r.warehouse, "express", Thresholds.from_env())),
    diagnostic_check([MAIN, "flagship_course_sales"], FLAGSHIP_WEBHOOK, set(),
                     lambda r: webhook(r.warehouse, "flagship", Thresholds.from_env())),
    diagnostic_check([MAIN, "landing_leads"], LANDING_SYNC, set(),
                     lambda r: landing_sync(r.warehouse, Thresholds.from_env())),
    diagnostic_check([MAIN, "express_course_sales"], EXPRESS_SALES, set(),
                     lambda r: course_sales(r.warehouse, "express", Thresholds.from_env())),
    diagnostic_check([MAIN, "flagship_course_sales"], FLAGSHIP_SALES, set(),
                     lambda r: course_sales(r.warehouse, "flagship", Thresholds.from_env())),
    diagnostic_check(["raw_supabase_traffic", "all_sales_tracking"], ALL_SALES_TRACKING,
                     {"supabase_traffic"}, lambda r: all_sales_tracking(r.supabase_traffic)),
    diagnostic_check(["raw_amocrm", "leads"], AMOCRM_API, {"amocrm"},
                     lambda r: amocrm_api(r.amocrm, r.warehouse)),
    diagnostic_check(["raw_facebook", "token_info"], FACEBOOK_TOKEN, {"facebook"},
                     lambda r: facebook_token(r.facebook, Thresholds.from_env())),
    diagnostic_check(["core", "sales"], RECONCILIATION, set(),
                     lambda r: reconciliation(r.warehouse)),
    diagnostic_check(["marts", "source_freshness"], QUARANTINE, set(),
                     lambda r: quarantine(r.warehouse)),
    diagnostic_check(["raw_amocrm", "leads"], AMOCRM_TOKEN, set(),
                     lambda r: amocrm_token(r.warehouse, Thresholds.from_env())),
    diagnostic_check([MAIN, "landing_leads"], SUPABASE_KEYS["main"], {"supabase_main"},
                     lambda r: supabase_key(r.supabase_main, SUPABASE_KEYS["main"],
                                            "landing_leads")),
    diagnostic_check(["raw_supabase_tripwire", "tripwire_users"], SUPABASE_KEYS["tripwire"],
                     {"supabase_tripwire"},
                     lambda r: supabase_key(r.supabase_tripwire, SUPABASE_KEYS["tripwire"],
                                            "tripwire_users")),
]  # fmt: skip

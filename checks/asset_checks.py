"""The diagnostics as Dagster asset checks on the assets they judge, one per entry of the
registry (`checks.diagnostics.DIAGNOSTICS`), each Supabase table's schema drift check and the
core tables' data quality suites (checks/quality.py): each
runs after its asset loads, shows its details as metadata in the UI, and records its verdict in
marts.integration_health. A failed check does not fail the run; the alert sensor reads check
evaluations.

The checks of one asset share one step (a multi-asset check that can run any subset of them),
each keeping its own name, result, severity and metadata: a step costs the run about ten event
writes and its start-up, and `make run` had 20 check steps for 11 assets. Not one step per
source: a step waits for every asset it checks, so a source's one failed table would skip the
checks of its other tables. Nor one per model group: a failed blocking check (data quality) fails
its whole step, which would hold back the marts of the other core table too."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from checks.diagnostics import DIAGNOSTICS, Diagnostic, Inputs, Spec, Thresholds, evaluate
from checks.integration_health import record
from checks.quality import QUALITY_TABLES, quality_spec
from checks.quality import check_result as quality_result
from checks.schema_drift import drift_spec
from checks.schema_drift import evaluate as drift_verdict
from resources.canonical import CANONICAL_TABLES, CanonicalTable
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


def check_name(name: str) -> str:
    return name.lower().replace(" ", "_")


def check_key(spec: Spec) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(list(spec.asset)), check_name(spec.name))


def previous_details(instance: dg.DagsterInstance, spec: Spec) -> dict[str, Any] | None:
    """The details the check's latest evaluation recorded (its metadata), None before its first:
    a diagnostic that compares with the last check reads it from Dagster, not from the mart."""
    key = check_key(spec)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    event = latest.event if latest else None
    data = event.dagster_event.event_specific_data if event and event.dagster_event else None
    metadata = getattr(data, "metadata", None)
    if not metadata:
        return None
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def verdict(spec: Spec, context: Any) -> Diagnostic:
    """The diagnostic evaluated with the run's resources, recorded in marts.integration_health."""
    warehouse: WarehouseResource = context.resources.warehouse
    inputs = Inputs(warehouse, context.resources, Thresholds.from_env(),
                    previous_details(context.instance, spec))  # fmt: skip
    diagnostic = evaluate(spec, inputs)
    record(context.instance, warehouse, [diagnostic], f"{spec.name}, run {context.run.run_id}")
    return diagnostic


@dataclass(frozen=True)
class Check:
    """One check of an asset's check step: its spec, the resources it reads, its verdict."""

    spec: dg.AssetCheckSpec
    resources: frozenset[str]
    judge: Callable[[Any], dg.AssetCheckResult]


def diagnostic_check(spec: Spec) -> Check:
    """The check of `spec`; its description says what it measures and its thresholds. A
    source not configured is a failed check naming every variable. Its sources' resources say
    whether they are configured enough to be judged."""
    return Check(
        dg.AssetCheckSpec(check_name(spec.name), asset=dg.AssetKey(list(spec.asset)),
                          description=f"{spec.name}: {spec.measures}"),
        frozenset({"warehouse", *spec.sources, *([spec.probe] if spec.probe else [])}),
        lambda context: check_result(verdict(spec, context)),
    )  # fmt: skip


def drift_check(table: CanonicalTable) -> Check:
    return Check(drift_spec(table), frozenset({"warehouse"}),
                 lambda context: drift_verdict(context.resources.warehouse, table))  # fmt: skip


def quality_check(table: str) -> Check:
    return Check(quality_spec(table), frozenset({"warehouse"}),
                 lambda context: quality_result(context.resources.warehouse, table))  # fmt: skip


def check_step(asset: dg.AssetKey, checks: list[Check]) -> dg.AssetChecksDefinition:
    """One step for the checks of `asset`, any subset of them (the UI runs one alone). A check
    that raises fails the step after the others have reported theirs."""

    @dg.multi_asset_check(
        specs=[check.spec for check in checks],
        name=f"{'__'.join(asset.path)}_checks",
        required_resource_keys=set().union(*(check.resources for check in checks)),
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        failure: Exception | None = None
        for check in checks:
            if check.spec.key not in context.selected_asset_check_keys:
                continue
            try:
                result = check.judge(context)
            except Exception as exc:  # noqa: BLE001 - raised below, once every check reported
                failure = failure or exc
                continue
            yield result._replace(asset_key=asset, check_name=check.spec.name)
        if failure is not None:
            raise failure

    return _checks


def check_steps(checks: list[Check]) -> list[dg.AssetChecksDefinition]:
    """One check step per asset, holding every check of `checks` on it."""
    by_asset: dict[dg.AssetKey, list[Check]] = {}
    for check in checks:
        by_asset.setdefault(check.spec.asset_key, []).append(check)
    return [check_step(asset, group) for asset, group in by_asset.items()]


diagnostic_checks = check_steps([*map(diagnostic_check, DIAGNOSTICS),
                                 *map(drift_check, CANONICAL_TABLES),
                                 *map(quality_check, QUALITY_TABLES)])  # fmt: skip
_reported: set[tuple[str, str]] = set()  # (run id, check): once per run, however many steps fail


def report_vendor_checks(context: dg.AssetExecutionContext, source: str) -> None:
    """After a step of `source` failed: evaluate its credential and vendor diagnostics now and
    record them as the checks' evaluations (Dagster skips the checks of a failed step), so the
    UI shows why, not "Execution failed"."""
    for spec in DIAGNOSTICS:
        if not spec.on_failure or spec.sources != (source,):
            continue
        if (context.run.run_id, spec.name) in _reported:
            continue
        _reported.add((context.run.run_id, spec.name))
        result = check_result(verdict(spec, context))
        key = check_key(spec)
        context.instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
            )
        )

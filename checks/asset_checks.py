"""The diagnostics as Dagster asset checks on the raw assets they judge, one per entry of the
registry (`checks.diagnostics.DIAGNOSTICS`): each runs after its asset loads, shows its details
as metadata in the UI, and records its verdict in marts.integration_health. A failed check does
not fail the run; the alert sensor reads check evaluations."""

from typing import Any

import dagster as dg

from checks.diagnostics import DIAGNOSTICS, Diagnostic, Inputs, Spec, Thresholds, evaluate
from checks.integration_health import record
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


def diagnostic_check(spec: Spec) -> dg.AssetChecksDefinition:
    """The check of `spec` on its asset; its description says what it measures and its
    thresholds. A source not configured is a failed check naming every variable."""

    @dg.asset_check(
        asset=dg.AssetKey(list(spec.asset)),
        name=check_name(spec.name),
        description=f"{spec.name}: {spec.measures}",
        # its sources' resources say whether they are configured enough to be judged
        required_resource_keys={"warehouse", *spec.sources, *([spec.probe] if spec.probe else [])},
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return check_result(verdict(spec, context))

    return _check


diagnostic_checks = [diagnostic_check(spec) for spec in DIAGNOSTICS]
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

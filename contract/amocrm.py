"""AmoCRM's side of the contract: which pipelines are the two courses, which lead custom fields
carry UTM.

`discover_amocrm` reads the account's catalog (pipelines with their statuses, lead custom fields)
for `make discover`, which shows it with `render_amocrm`, proposes an `amocrm:` section with
`propose_amocrm` and reports what is wrong in the current one with `check_amocrm`. When the
models are built, `resolve_pipelines` turns the contract's ids or names into ids against the
pipelines the last AmoCRM load stored in `raw_amocrm.pipelines`. Every mistake is one sentence
naming the file, the key and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.amocrm_records import (
    AmoFieldDefinition,
    AmoPipeline,
    AmoStatus,
    CustomField,
    field_matches,
)
from contract.config import (
    ROOT,
    UTM_FIELD_NAMES,
    AmoCrmEntry,
    Contract,
    ContractError,
    contract_path,
    load_contract,
)
from resources.amocrm import (
    INTEGRATION,
    LOST_STATUS_ID,
    UNSORTED_STATUS_TYPE,
    WON_STATUS_ID,
    AmoCrmResource,
)
from resources.warehouse import WarehouseResource

PIPELINE_KEYS = ("express", "flagship")
COURSES = {"express": "Express", "flagship": "Flagship"}
# What a course pipeline's name contains when discovery proposes it (accounts name them in
# English or Russian).
COURSE_WORDS = {"express": ("express", "экспресс"), "flagship": ("flagship", "флагман")}
MAX_SEEN = 12  # pipelines or fields listed in one sentence; an account can have hundreds
STATUS_ROLES = {WON_STATUS_ID: "won", LOST_STATUS_ID: "lost"}  # fixed ids in every pipeline

# (id, name) of an account's pipelines, in the account's order
PipelineNames = Sequence[tuple[int, str]]


@dataclass(frozen=True)
class StatusInfo:
    id: int
    name: str
    type: int | None


@dataclass(frozen=True)
class PipelineInfo:
    id: int
    name: str
    statuses: tuple[StatusInfo, ...] = ()


@dataclass(frozen=True)
class FieldInfo:
    id: int
    name: str
    code: str | None
    type: str | None


@dataclass(frozen=True)
class AmoCrmCatalog:
    """What an AmoCRM account offers the contract: its lead pipelines and lead custom fields."""

    pipelines: tuple[PipelineInfo, ...]
    custom_fields: tuple[FieldInfo, ...]

    def pipeline_names(self) -> list[tuple[int, str]]:
        return [(p.id, p.name) for p in self.pipelines]


# ---- discovery --------------------------------------------------------------------------------


def discover_amocrm(resource: AmoCrmResource, warehouse: WarehouseResource) -> AmoCrmCatalog:
    """The account's pipelines and lead custom fields, read with the token pair stored in
    `ops.oauth_tokens` (seeded from AMOCRM_ACCESS_TOKEN the first time, as a load does)."""
    with resource.open(warehouse, warehouse.last_success(INTEGRATION)) as client:
        pipelines = client.pipelines()
        fields = client.lead_custom_fields()
    return AmoCrmCatalog(
        tuple(_pipeline_info(record) for record in pipelines),
        tuple(_field_info(record) for record in fields),
    )


def _pipeline_info(record: dict[str, Any]) -> PipelineInfo:
    pipeline = AmoPipeline.model_validate(record)
    statuses = (
        AmoStatus.model_validate({"pipeline_id": pipeline.id, **status})
        for status in record.get("_embedded", {}).get("statuses") or []
    )
    return PipelineInfo(
        pipeline.id,
        pipeline.name,
        tuple(StatusInfo(s.id, s.name, s.type) for s in statuses),
    )


def _field_info(record: dict[str, Any]) -> FieldInfo:
    field = AmoFieldDefinition.model_validate(record)
    return FieldInfo(field.id, field.name, field.code, field.type)


def render_amocrm(catalog: AmoCrmCatalog) -> str:
    """The catalog as plain-text tables: each pipeline with its statuses, then the fields."""
    lines = [f"AmoCRM pipelines ({len(catalog.pipelines)})"]
    for pipeline in catalog.pipelines:
        lines += ["", f"  {pipeline.id}  {pipeline.name}"]
        statuses = [(str(s.id), s.name, _status_type(s)) for s in pipeline.statuses]
        lines += _table(("status id", "name", "type"), statuses, indent=4)
    lines += ["", f"AmoCRM lead custom fields ({len(catalog.custom_fields)})", ""]
    fields = [(str(f.id), f.name, f.code or "", f.type or "") for f in catalog.custom_fields]
    lines += _table(("id", "name", "code", "type"), fields, indent=2)
    return "\n".join(lines) + "\n"


def _status_type(status: StatusInfo) -> str:
    role = STATUS_ROLES.get(status.id) or (
        "unsorted" if status.type == UNSORTED_STATUS_TYPE else ""
    )
    kind = "" if status.type is None else str(status.type)
    return f"{kind} ({role})" if role else kind


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], indent: int) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    return [
        " " * indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        .rstrip()
        for row in (headers, *rows)
    ]  # fmt: skip


# ---- pipelines --------------------------------------------------------------------------------


def stored_pipelines(warehouse: WarehouseResource) -> list[tuple[int, str]] | None:
    """(id, name) of the pipelines the last AmoCRM load found; None if AmoCRM never loaded."""
    rows = warehouse.fetch_all(
        "SELECT id, name, _deleted_at IS NULL FROM raw_amocrm.pipelines ORDER BY sort, id"
    )
    if not rows:
        return None
    return [(int(pid), str(name)) for pid, name, live in rows if live]


def resolve_pipelines(
    warehouse: WarehouseResource, contract: Contract | None = None, *, before_load: bool = False
) -> dict[str, int | None]:
    """{"express": id, "flagship": id} from the contract, checked against the stored pipelines.

    `before_load=True` (the models) lets a pipeline named by name stay None while AmoCRM has
    never loaded: no deal exists yet for an id to classify, so the marts come out the same and
    an AmoCRM outage from the first day does not stop the other sources' leads and sales. The
    diagnostics keep saying the sentence meanwhile.
    """
    contract = contract or load_contract()
    seen = stored_pipelines(warehouse)
    resolved: dict[str, int | None] = {}
    for key in PIPELINE_KEYS:
        value = contract.amocrm.pipelines.get(key)
        pending = before_load and seen is None and isinstance(value, str)
        resolved[key] = None if pending else resolve_pipeline(key, value, seen, contract.path)
    return resolved


def resolve_pipeline(key: str, value: int | str | None, seen: PipelineNames | None,
                     path: Path) -> int:  # fmt: skip
    """The id `value` names among `seen` (None: AmoCRM not loaded yet), or ContractError.

    A number is an id, text a name matched whole and case-insensitively. Before the first load
    an id is taken on trust: the models then simply find no lead in it.
    """
    where = f"{_shown(path)}: amocrm.pipelines.{key}"
    if value is None:
        raise ContractError(
            f"{where} is not set; write the id or name of the {COURSES[key]} course pipeline "
            "(make discover lists them)."
        )
    if seen is None:
        if isinstance(value, int):
            return value
        raise ContractError(
            f"{where} is {value!r}, but the AmoCRM pipelines are not loaded yet; write the "
            "pipeline's id, or load AmoCRM first."
        )
    if isinstance(value, int):
        if any(pid == value for pid, _ in seen):
            return value
        raise ContractError(
            f"{where} is {value}, but no AmoCRM pipeline has that id (seen: {_listed(seen)}); "
            "write the pipeline's id or exact name."
        )
    hits = [pid for pid, name in seen if name.casefold() == value.strip().casefold()]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ContractError(
            f"{where} is {value!r}, but {len(hits)} AmoCRM pipelines have that name "
            f"({', '.join(map(str, hits))}); write the id of the right one."
        )
    raise ContractError(
        f"{where} is {value!r}, but no AmoCRM pipeline has that name (seen: {_listed(seen)}); "
        "write the pipeline's id or exact name."
    )


def _shown(path: Path) -> str:
    """The contract file as the user knows it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _listed(items: Sequence[tuple[int, str]]) -> str:
    shown = ", ".join(f"{pid} {name}" for pid, name in items[:MAX_SEEN])
    more = len(items) - MAX_SEEN
    return f"{shown}, and {more} more" if more > 0 else shown or "none"


# ---- UTM fields -------------------------------------------------------------------------------


def _fields_named(catalog: AmoCrmCatalog, wanted: int | str | None, utm: str) -> list[FieldInfo]:
    """The fields a lead's UTM value would be read from (the loader's own matching rule)."""
    return [
        f
        for f in catalog.custom_fields
        if field_matches(CustomField(field_id=f.id, field_name=f.name, field_code=f.code),
                         wanted, utm)
    ]  # fmt: skip


# ---- proposal and check -----------------------------------------------------------------------


def propose_amocrm(catalog: AmoCrmCatalog, current: AmoCrmEntry) -> dict[str, Any]:
    """The `amocrm:` section to propose: the user's values where they resolve; otherwise the one
    pipeline whose name looks like the course (or a placeholder saying what to write) and the
    UTM fields found by code or name. A UTM with no field at all is left out."""
    seen = catalog.pipeline_names()
    pipelines = {
        key: _proposed_pipeline(key, current.pipelines.get(key), seen) for key in PIPELINE_KEYS
    }
    utm: dict[str, int | str] = {}
    for name in UTM_FIELD_NAMES:
        wanted = current.utm_fields.get(name)
        if wanted is not None and len(_fields_named(catalog, wanted, name)) == 1:
            utm[name] = wanted
            continue
        found = _fields_named(catalog, None, name)
        if found:
            utm[name] = found[0].code or found[0].name
    return {"pipelines": pipelines, "utm_fields": utm}


def _proposed_pipeline(key: str, value: int | str | None, seen: PipelineNames) -> int | str:
    if value is not None:
        try:
            resolve_pipeline(key, value, seen, contract_path())
        except ContractError:
            pass  # replaced by a proposal below; check_amocrm says what was wrong with it
        else:
            return value
    words = COURSE_WORDS[key]
    candidates = [(pid, name) for pid, name in seen if any(w in name.casefold() for w in words)]
    if len(candidates) != 1:
        return f"<id or name of the {COURSES[key]} course pipeline>"
    pid, name = candidates[0]
    same_name = sum(1 for _, other in seen if other.casefold() == name.casefold())
    return name if same_name == 1 else pid


def check_amocrm(
    catalog: AmoCrmCatalog, current: AmoCrmEntry, path: Path | None = None
) -> list[str]:
    """What is wrong with the current `amocrm:` section against the account, one sentence each,
    before anything loads: pipelines that do not resolve, UTM fields no lead field matches."""
    path = path or contract_path()
    problems = []
    seen = catalog.pipeline_names()
    for key in PIPELINE_KEYS:
        try:
            resolve_pipeline(key, current.pipelines.get(key), seen, path)
        except ContractError as exc:
            problems.append(exc.message)
    fields = [(f.id, f.name) for f in catalog.custom_fields]
    for name in UTM_FIELD_NAMES:
        wanted = current.utm_fields.get(name)
        found = _fields_named(catalog, wanted, name)
        where = f"{_shown(path)}: amocrm.utm_fields.{name}"
        if wanted is None and not found:
            problems.append(
                f"{where} is not set and no lead custom field has the code {name.upper()} or "
                f"the name {name}; write the code, name or id of the field that carries "
                f"{name} (make discover lists them)."
            )
        elif not found:
            problems.append(
                f"{where} is {wanted!r}, but no lead custom field has that code, name or id "
                f"(seen: {_listed(fields)}); write the field's code, name or id."
            )
        elif len(found) > 1:
            problems.append(
                f"{where} is {wanted!r}, which matches {len(found)} lead custom fields "
                f"({', '.join(str(f.id) for f in found)}); write the id of the right one."
            )
    return problems

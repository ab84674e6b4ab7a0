"""AmoCRM's JSON as typed records: leads (UTM pulled out of custom fields), pipelines, statuses,
custom field definitions, events, account. A record that fails validation is quarantined with
pydantic's reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from contract.records import Money

UTM_NAMES = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class AmoRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CustomFieldValue(AmoRecord):
    value: Any = None


class CustomField(AmoRecord):
    field_id: int
    field_name: str | None = None
    field_code: str | None = None
    field_type: str | None = None
    values: list[CustomFieldValue] = []


class AmoLead(AmoRecord):
    id: int
    name: str | None = None
    price: Money | None = None
    pipeline_id: int
    status_id: int
    responsible_user_id: int | None = None
    loss_reason_id: int | None = None
    created_at: int
    updated_at: int
    closed_at: int | None = None
    is_deleted: bool = False
    custom_fields_values: list[CustomField] | None = None


class AmoStatus(AmoRecord):
    id: int
    name: str
    sort: int | None = None
    type: int | None = None
    is_editable: bool | None = None
    pipeline_id: int


class AmoPipeline(AmoRecord):
    id: int
    name: str
    sort: int | None = None
    is_main: bool | None = None
    is_archive: bool | None = None


class AmoFieldDefinition(AmoRecord):
    """A lead custom field as `/api/v4/leads/custom_fields` defines it (not a lead's value)."""

    id: int
    name: str
    code: str | None = None
    type: str | None = None


class AmoEvent(AmoRecord):
    id: str
    type: str
    entity_id: int
    created_at: int
    value_before: Any = None
    value_after: Any = None


class AmoAccount(AmoRecord):
    id: int
    name: str | None = None
    subdomain: str | None = None
    currency: str | None = None


def utm_values(
    fields: list[CustomField] | None, chosen: Mapping[str, int | str]
) -> list[str | None]:
    """UTM values from the fields `chosen` names (the contract's `amocrm.utm_fields`): a number
    is a field id, text a field code, name or id (case-insensitive). A UTM the contract leaves
    out is found by `field_code` (UTM_SOURCE...), else by a `field_name` of utm_source... when
    the field has no code."""
    found: dict[str, str | None] = dict.fromkeys(UTM_NAMES)
    for field in fields or []:
        value = field.values[0].value if field.values else None
        for name in UTM_NAMES:
            if found[name] is None and field_matches(field, chosen.get(name), name):
                found[name] = None if value is None else str(value)
    return [found[name] for name in UTM_NAMES]


def field_matches(field: CustomField, wanted: int | str | None, utm_name: str) -> bool:
    """Is `field` the one `wanted` names (None: the default for `utm_name`)?"""
    if wanted is None:
        return field.field_code == utm_name.upper() or (
            field.field_code is None and (field.field_name or "").lower() == utm_name
        )
    if isinstance(wanted, int):
        return field.field_id == wanted
    names = (field.field_code or "", field.field_name or "", str(field.field_id))
    return wanted.casefold() in (n.casefold() for n in names)

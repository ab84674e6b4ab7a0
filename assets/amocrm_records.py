"""AmoCRM's JSON as typed records: leads (UTM pulled out of custom fields), pipelines, statuses,
events, account. A record that fails validation is quarantined with pydantic's reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

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
    price: Decimal | None = None
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


def utm_values(fields: list[CustomField] | None, overrides: dict[str, str]) -> list[str | None]:
    """UTM values by `field_code` (UTM_SOURCE...), else by `field_name`, unless overridden."""
    found: dict[str, str | None] = dict.fromkeys(UTM_NAMES)
    for field in fields or []:
        value = field.values[0].value if field.values else None
        for name in UTM_NAMES:
            wanted = overrides.get(name)
            if wanted is not None:
                hit = wanted in (field.field_name, str(field.field_id), field.field_code)
            else:
                hit = field.field_code == name.upper() or (
                    field.field_code is None and (field.field_name or "").lower() == name
                )
            if hit and found[name] is None:
                found[name] = None if value is None else str(value)
    return [found[name] for name in UTM_NAMES]

"""The parameters each SQL model of core and marts is run with: the reporting settings, the
vendor facts and the contract's course pipelines for the models whose SQL binds them. Above the
clients, so the facts flow one way: declared in each client's settings block, bound here."""

import json
from typing import Any

import dagster as dg

from contract.amocrm import PIPELINE_KEYS, resolve_pipelines
from resources.amocrm import LOST_STATUS_ID, WON_STATUS_ID
from resources.errors import ConfigError
from resources.facebook import PROVISIONAL_DAYS
from resources.settings import fx_rates, reporting_currency, reporting_tz
from resources.sql_files import load_sql
from resources.warehouse import WarehouseResource

# what SQL binds by name instead of writing a status id or a window as a literal
VENDOR_FACTS: dict[str, Any] = {
    "won_status": WON_STATUS_ID,
    "lost_status": LOST_STATUS_ID,
    "provisional_days": PROVISIONAL_DAYS,
}


def vendor_params(text: str) -> dict[str, Any]:
    """The vendor facts the SQL `text` binds by name."""
    return {name: value for name, value in VENDOR_FACTS.items() if f"%({name})s" in text}


def model_params(warehouse: WarehouseResource, table: str) -> dict[str, Any]:
    """The parameters the SQL model `table` (e.g. "core.sales") is run with.

    The course pipelines (the contract's `amocrm.pipelines`, resolved against the stored AmoCRM
    pipelines) are added only for the models whose SQL binds them: a contract mistake then fails
    those with its sentence (a `dg.Failure`) while spend and source freshness keep building.
    """
    try:
        params: dict[str, Any] = {
            "tz": reporting_tz(),
            "currency": reporting_currency(),
            "fx": json.dumps(fx_rates()),
        }
        text = load_sql(table.replace(".", "/"))
        params |= vendor_params(text)
        if any(f"%({key})s" in text for key in PIPELINE_KEYS):
            params |= resolve_pipelines(warehouse, before_load=True)
    except ConfigError as exc:
        # the model fails with the sentence alone, as a source step does, and is not retried:
        # only a person editing the setting or the contract can fix it
        raise dg.Failure(description=exc.message, allow_retries=False) from None
    return params

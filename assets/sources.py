"""The sources and their raw assets: each source's raw assets form a group named after it; and
marts.source_freshness, the state of their loads."""

import dagster as dg

from assets.amocrm import amocrm_assets
from assets.contract import OWNERS, SOURCE_FRESHNESS
from assets.facebook import facebook_assets
from assets.supabase import supabase_assets
from resources.settings import SOURCE_STALE_ERROR, SOURCE_STALE_WARNING

# the UI and the freshness checks show a late source; marts.source_freshness says why
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=SOURCE_STALE_ERROR, warn_window=SOURCE_STALE_WARNING
)
raw_assets = dg.map_asset_specs(
    lambda spec: spec.replace_attributes(freshness_policy=RAW_FRESHNESS),
    [*supabase_assets, *amocrm_assets, *facebook_assets],
)
SOURCE_ASSETS: dict[str, list[dg.AssetKey]] = {}
for _definition in raw_assets:
    for _key in _definition.keys:
        SOURCE_ASSETS.setdefault(_definition.group_names_by_key[_key], []).append(_key)
SOURCES: tuple[str, ...] = tuple(SOURCE_ASSETS)
RAW_KEYS: list[dg.AssetKey] = [k for keys in SOURCE_ASSETS.values() for k in keys]
# Written after every load attempt by its one writer (assets/contract.py's report_freshness),
# failed ones included, so it is not a model the automation rebuilds: the UI shows each of those
# materializations, with the rows the table holds.
source_freshness = dg.AssetSpec(
    SOURCE_FRESHNESS,
    deps=RAW_KEYS,
    group_name="marts",
    kinds={"postgres", "sql"},
    owners=OWNERS,
    description="Dashboard: per source, the last successful load, the last attempt and the "
    "error that keeps it stale. Refreshed after every source attempt, failed ones included.",
)

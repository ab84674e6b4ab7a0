"""The sources and their raw assets: each source's raw assets form a group named after it."""

import dagster as dg

from assets.amocrm import amocrm_assets
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

"""What each column of `core` and `marts` means: declared once, here.

The assets' column schema (`dagster/column_schema`, shown in the UI) reads these; the README's
dashboard contract uses the same words (each note in its table is part of the description
here, and tests/test_operator_surface.py fails when they drift). They live in code rather than
being parsed out of the README at run time, because metadata must not depend on prose, and a
table's text is closest to the SQL that builds it.
"""

from __future__ import annotations

from resources.facebook import RESTATEMENT_WINDOW

DAY = "calendar day in REPORTING_TZ (default Asia/Almaty)"
FUNNEL = "express, flagship, tripwire, prooftest (or unknown)"
TARGETOLOGIST = "the targetologist from core.attribute(utm…) (`unattributed` when no rule matches)"
CURRENCY = "currency of the money columns"
UTM = {
    f"utm_{p}": f"the lead's utm_{p}" for p in ("source", "medium", "campaign", "content", "term")
}

COLUMNS: dict[str, dict[str, str]] = {
    "marts.leads_total": {
        "day": DAY,
        "leads": "leads of the day: landing + tripwire + deals created in AmoCRM",
        "test_leads": "test leads of the day (ProofTest)",
    },
    "marts.leads_by_funnel": {
        "day": DAY,
        "funnel": f"the lead's funnel: {FUNNEL}",
        "leads": "leads of the day in the funnel",
        "synced_to_amocrm": "of them, how many reached AmoCRM",
    },
    "marts.sales_total": {
        "day": DAY,
        "funnel": f"the sale's funnel, from its deal's AmoCRM pipeline: {FUNNEL}",
        "currency": CURRENCY,
        "sales": "sales of the day (one per deal, however many webhooks)",
        "revenue": "their amount, in `currency`",
    },
    "marts.targetologist_daily": {
        "day": DAY + "; Facebook days are the ad account's own calendar days",
        "targetologist": TARGETOLOGIST,
        "currency": "REPORTING_CURRENCY (default KZT), the currency of spend and revenue",
        "spend": "Facebook spend converted with FX_RATES (NULL when an exchange rate is missing)",
        "impressions": "Facebook impressions",
        "clicks": "Facebook clicks",
        "leads": "leads attributed to the targetologist",
        "sales": "sales attributed to the targetologist",
        "revenue": "their revenue, in `currency`",
        "cpl": "spend / leads (NULL when dividing by zero)",
        "cpa": "spend / sales (NULL when dividing by zero)",
        "roas": "revenue / spend (NULL when dividing by zero)",
        "is_provisional": f"inside Facebook's {RESTATEMENT_WINDOW.days}-day restatement window, "
        "plus one day: the spend may still change",
    },
    "marts.source_freshness": {
        "source": "the source: amocrm, facebook, supabase_main, supabase_tripwire, "
        "supabase_traffic",
        "last_success_at": "when one of its loads last succeeded (empty: never)",
        "last_attempt_at": "when a load of it was last attempted, failed ones included",
        "status": "how its latest attempt ended (ok/error)",
        "error": "the latest failure's sentence while it is stale (empty when ok)",
    },
    "marts.leads_by_targetologist": {
        "day": DAY,
        "targetologist": TARGETOLOGIST,
        "funnel": f"the lead's funnel: {FUNNEL}",
        "leads": "leads of the day (test leads included, as in `leads_by_funnel`)",
        "test_leads": "of them, test leads (ProofTest)",
        "synced_to_amocrm": "of them, how many reached AmoCRM",
    },
    "marts.sales_by_targetologist": {
        "day": DAY,
        "targetologist": TARGETOLOGIST,
        "funnel": f"the sale's funnel: {FUNNEL}",
        "currency": CURRENCY,
        "sales": "sales of the day",
        "revenue": "their amount, in `currency`",
    },
    "marts.integration_health": {
        "name": "the diagnostic, as the old dashboard named it",
        "status": "ok/warning/error",
        "message": "one sentence: what was found",
        "details": "the figures behind it (jsonb)",
        "checked_at": "when it last ran",
    },
    "core.leads": {
        "lead_key": "the lead's key: its source and its id there",
        "source": "where it came from: landing, prooftest, tripwire or amocrm",
        "source_id": "its id in that source",
        "funnel": f"the lead's funnel: {FUNNEL}",
        "is_test": "a ProofTest (test) lead, counted apart",
        "created_at": "when it was created (UTC)",
        "report_day": DAY,
        **UTM,
        "amocrm_lead_id": "its AmoCRM deal, when synced",
        "amocrm_pipeline_id": "the deal's pipeline",
        "amocrm_status_id": "the deal's status (142 won, 143 lost)",
        "synced_to_amocrm": "the lead reached AmoCRM",
        "targetologist": TARGETOLOGIST,
    },
    "core.sales": {
        "sale_key": "the sale's key: one per deal (or tripwire purchase)",
        "source": "webhook, amocrm (a won deal without webhook) or tripwire",
        "funnel": f"the sale's funnel, from its deal's AmoCRM pipeline: {FUNNEL}",
        "amocrm_lead_id": "the deal",
        "sold_at": "the first delivery's time (UTC)",
        "report_day": DAY,
        "amount": "the sale's amount, in `currency`",
        "currency": CURRENCY,
        "webhook_rows": "how many times its webhook was delivered",
        "webhook_pipeline_id": "the pipeline the webhook named",
        "amocrm_pipeline_id": "the deal's pipeline in AmoCRM",
        "amocrm_status_id": "the deal's status in AmoCRM",
        "pipeline_mismatch": "the webhook named another pipeline than the deal's",
        "tracked": "all_sales_tracking has it",
        **{k: v.replace("lead's", "sale's lead's") for k, v in UTM.items()},
        "targetologist": TARGETOLOGIST,
    },
    "core.ad_spend_daily": {
        "ad_id": "the Facebook ad",
        "date": "the ad account's own calendar day",
        "account_id": "the ad account (act_…)",
        "campaign_id": "the ad's campaign",
        "campaign_name": "the campaign's name (what attribution rules match)",
        "currency": "the ad account's currency",
        "spend": "spend in the account's currency",
        "spend_reporting": "spend converted with FX_RATES (NULL when an exchange rate is missing)",
        "impressions": "Facebook impressions",
        "clicks": "Facebook clicks",
        "fb_leads": "leads as Facebook reports them (for comparison only)",
        "targetologist": TARGETOLOGIST,
    },
}


def column_description(schema: str, table: str, column: str) -> str | None:
    return COLUMNS.get(f"{schema}.{table}", {}).get(column)

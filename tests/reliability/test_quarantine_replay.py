"""Quarantine replay for the sources the hostile-input module does not replay end to end: AmoCRM
leads and lead events, Facebook insights. Simulated: records quarantined earlier (as a load
stores them), in a fresh warehouse; no vendor is called (replay needs none for these)."""

from __future__ import annotations

import json

import pytest

from assets.quarantine import replay

LEAD = {"id": 501, "name": "back", "pipeline_id": 1, "status_id": 142,
        "created_at": 1764547200, "updated_at": 1764547200}  # fmt: skip
EVENT = {"id": "ev-9", "type": "lead_deleted", "entity_id": 501, "created_at": 1764547200}
INSIGHT = {"ad_id": "ad-7", "date_start": "2026-11-30", "spend": "12.50", "impressions": "40",
           "clicks": "3", "ad_name": "replayed"}  # fmt: skip
CASES = {
    "amocrm leads": ("amocrm", "leads", LEAD, "SELECT name FROM raw_amocrm.leads", ("back",)),
    "amocrm lead events": (
        "amocrm", "lead_events", EVENT, "SELECT id FROM raw_amocrm.lead_events", ("ev-9",),
    ),
    "facebook insights": (
        "facebook", "insights:act_1", INSIGHT,
        "SELECT ad_name, spend FROM raw_facebook.ad_insights_daily", ("replayed", 12.5),
    ),
}  # fmt: skip


def _quarantine(warehouse, source: str, entity: str, record: object, reason: str) -> None:
    warehouse.fetch_all(
        "INSERT INTO ops.quarantine (source, entity, record_key, reason, record)"
        " VALUES (%s, %s, 'k', %s, %s) RETURNING id",
        (source, entity, reason, json.dumps(record)),
    )


@pytest.fixture
def account(warehouse):
    warehouse.fetch_all(
        "INSERT INTO raw_facebook.ad_accounts (id, name, currency, timezone_name, _raw)"
        " VALUES ('act_1', 'A', 'USD', 'Asia/Almaty', '{}') RETURNING id"
    )
    return warehouse


@pytest.mark.parametrize(("source", "entity", "record", "query", "row"), CASES.values(),
                         ids=CASES.keys())  # fmt: skip
def test_given_cause_fixed_when_replayed_then_in_raw_and_out_of_quarantine(
    account, source, entity, record, query, row
):
    _quarantine(account, source, entity, record, "a model that refused it once")
    [done] = replay(account, source, {})
    assert (done.loaded, done.still_quarantined) == (1, 0)
    assert [tuple(float(v) if not isinstance(v, str) else v for v in r)
            for r in account.fetch_all(query)] == [row]  # fmt: skip
    assert account.fetch_all("SELECT count(*) FROM ops.quarantine") == [(0,)]


def test_given_record_still_bad_when_replayed_then_stays_with_its_new_reason(warehouse):
    _quarantine(warehouse, "amocrm", "leads", {**LEAD, "status_id": "won"}, "an old reason")
    _quarantine(warehouse, "amocrm", "account", {"id": 1}, "whatever")
    outcome = {d.entity: d for d in replay(warehouse, "amocrm", {})}
    assert outcome["leads"].still_quarantined == 1 and outcome["account"].unsupported
    assert warehouse.fetch_all("SELECT entity, reason FROM ops.quarantine ORDER BY entity") == [
        ("account", "whatever"),
        ("leads", "status_id: Input should be a valid integer, unable to parse string as an "
                  "integer"),
    ]  # fmt: skip

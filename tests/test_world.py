"""The sandbox world: deterministic, consistent across sources, and as imperfect as production."""

from __future__ import annotations

from collections import Counter

from sandbox import ground_truth
from sandbox.world import FLAGSHIP_PIPELINE, WON, World


def snapshot(world: World) -> dict:
    return {
        p: {t: dict(table.rows) for t, table in tables.items()}
        for p, tables in world.supabase.items()
    } | {"amocrm": dict(world.amocrm_leads), "events": list(world.amocrm_events)}


def test_given_same_seed_when_built_then_identical_and_advance_chunks_do_not_matter():
    a, b = World(3, 0.2), World(3, 0.2)
    assert snapshot(a) == snapshot(b)
    a.advance(5).advance(7)
    b.advance(12)
    assert snapshot(a) == snapshot(b)
    assert snapshot(World(4, 0.2)) != snapshot(World(3, 0.2))


def test_given_world_then_it_has_the_reports_imperfections():
    world = World(7, 0.3)
    main = world.supabase["main"]
    leads = list(main["landing_leads"].rows.values())
    assert any(not lead["synced_to_amocrm"] for lead in leads)
    assert any(lead["utm_source"] is None for lead in leads)
    flagship = list(main["flagship_course_sales"].rows.values())
    on_right = sum(1 for s in flagship if s["pipeline_id"] == FLAGSHIP_PIPELINE)
    assert 0 < on_right < len(flagship) * 0.3
    per_deal = Counter(s["amocrm_lead_id"] for s in main["express_course_sales"].rows.values())
    assert max(per_deal.values()) == 2  # duplicated webhooks
    assert world.amocrm_deleted  # deletions in AmoCRM
    won = [d for d in world.amocrm_leads.values() if d["status_id"] == WON]
    assert won and all(d["closed_at"] for d in won)


def test_given_advance_then_new_leads_updates_and_deletions_appear():
    world = World(7, 0.3)
    before = dict(world.supabase["main"]["landing_leads"].rows)
    world.advance(48)
    after = world.supabase["main"]["landing_leads"].rows
    assert len(set(after) - set(before)) > 0
    assert any(after[k]["updated_at"] != before[k]["updated_at"] for k in before if k in after)
    total_days = {d for d, *_ in ground_truth.leads_total(world)}
    assert max(total_days) > max(r["created_at"] for r in before.values()).date()

-- core.leads: one row per lead across landing, ProofTest (test), Tripwire and AmoCRM-only deals.
-- reads: stg_supabase_main.landing_leads, stg_supabase_main.prooftest_leads,
--        stg_supabase_tripwire.tripwire_users, raw_amocrm.leads,
--        stg_supabase_traffic.targetologist_utm_rules, stg_supabase_traffic.targetologists
--        (the last two through core.attribute)
SELECT 'landing:' || l.id AS lead_key, 'landing' AS source, l.id AS source_id,
       coalesce(l.funnel, 'unknown') AS funnel, false AS is_test, l.created_at,
       (l.created_at AT TIME ZONE %(tz)s)::date AS report_day,
       l.utm_source, l.utm_medium, l.utm_campaign, l.utm_content, l.utm_term,
       l.amocrm_lead_id, a.pipeline_id AS amocrm_pipeline_id, a.status_id AS amocrm_status_id,
       l.synced_to_amocrm,
       core.attribute(l.utm_source, l.utm_medium, l.utm_campaign, l.utm_content, l.utm_term)
           AS targetologist
FROM stg_supabase_main.landing_leads l
LEFT JOIN raw_amocrm.leads a ON a.id = l.amocrm_lead_id AND a._deleted_at IS NULL
WHERE l._deleted_at IS NULL
  AND core.on_days(l.created_at, %(tz)s, %(days)s)
  AND core.on_keys(l.id, 'landing', %(keys)s)
UNION ALL
SELECT 'prooftest:' || p.id, 'prooftest', p.id, 'prooftest', true, p.created_at,
       (p.created_at AT TIME ZONE %(tz)s)::date,
       p.utm_source, p.utm_medium, p.utm_campaign, p.utm_content, p.utm_term,
       NULL, NULL, NULL, false,
       core.attribute(p.utm_source, p.utm_medium, p.utm_campaign, p.utm_content, p.utm_term)
FROM stg_supabase_main.prooftest_leads p
WHERE p._deleted_at IS NULL
  AND core.on_days(p.created_at, %(tz)s, %(days)s)
  AND core.on_keys(p.id, 'prooftest', %(keys)s)
UNION ALL
SELECT 'tripwire:' || u.id, 'tripwire', u.id, 'tripwire', false, u.created_at,
       (u.created_at AT TIME ZONE %(tz)s)::date,
       u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term,
       NULL, NULL, NULL, false,
       core.attribute(u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term)
FROM stg_supabase_tripwire.tripwire_users u
WHERE u._deleted_at IS NULL
  AND core.on_days(u.created_at, %(tz)s, %(days)s)
  AND core.on_keys(u.id, 'tripwire', %(keys)s)
UNION ALL
-- deals created in AmoCRM itself, in a course pipeline, that no landing lead points to
SELECT 'amocrm:' || a.id, 'amocrm', a.id::text,
       CASE a.pipeline_id WHEN %(express)s THEN 'express' ELSE 'flagship' END, false,
       a.created_at, (a.created_at AT TIME ZONE %(tz)s)::date,
       a.utm_source, a.utm_medium, a.utm_campaign, a.utm_content, a.utm_term,
       a.id, a.pipeline_id, a.status_id, true,
       core.attribute(a.utm_source, a.utm_medium, a.utm_campaign, a.utm_content, a.utm_term)
FROM raw_amocrm.leads a
WHERE a._deleted_at IS NULL AND a.pipeline_id IN (%(express)s, %(flagship)s)
  AND core.on_days(a.created_at, %(tz)s, %(days)s)
  AND core.on_int_keys(a.id, 'amocrm', %(keys)s)
  AND NOT EXISTS (SELECT 1 FROM stg_supabase_main.landing_leads l WHERE l.amocrm_lead_id = a.id)

-- core.leads: one row per lead across landing, ProofTest (test) and Tripwire, reporting day in REPORTING_TZ.
SELECT 'landing:' || l.id          AS lead_key,
       'landing'                   AS source,
       l.id                        AS source_id,
       coalesce(l.funnel, 'unknown') AS funnel,
       false                       AS is_test,
       l.created_at,
       (l.created_at AT TIME ZONE %(tz)s)::date AS report_day,
       l.utm_source, l.utm_medium, l.utm_campaign, l.utm_content, l.utm_term,
       l.amocrm_lead_id,
       l.synced_to_amocrm
FROM raw_supabase_main.landing_leads l
WHERE l._deleted_at IS NULL
UNION ALL
SELECT 'prooftest:' || p.id, 'prooftest', p.id, 'prooftest', true, p.created_at,
       (p.created_at AT TIME ZONE %(tz)s)::date,
       p.utm_source, p.utm_medium, p.utm_campaign, p.utm_content, p.utm_term,
       NULL, false
FROM raw_supabase_main.prooftest_leads p
WHERE p._deleted_at IS NULL
UNION ALL
SELECT 'tripwire:' || u.id, 'tripwire', u.id, 'tripwire', false, u.created_at,
       (u.created_at AT TIME ZONE %(tz)s)::date,
       u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term,
       NULL, false
FROM raw_supabase_tripwire.tripwire_users u
WHERE u._deleted_at IS NULL

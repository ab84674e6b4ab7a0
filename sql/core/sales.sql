-- core.sales: one row per real sale: course webhooks deduplicated per deal and linked to AmoCRM, won deals without a webhook, paid tripwire purchases.
-- reads: stg_supabase_main.express_course_sales, stg_supabase_main.flagship_course_sales,
--        raw_amocrm.leads, stg_supabase_main.landing_leads,
--        stg_supabase_traffic.all_sales_tracking, stg_supabase_tripwire.tripwire_purchases,
--        stg_supabase_tripwire.tripwire_users,
--        stg_supabase_traffic.targetologist_utm_rules, stg_supabase_traffic.targetologists
--        (the last two through core.attribute)
-- Built by sale key ('deal:' || deal_key, 'tripwire:' || purchase id): %(keys)s, NULL for all.
WITH webhooks AS (
    -- the webhooks of the deals among the keys, and those naming no deal by their own key
    -- (a superset of the keys' webhooks an index serves; `keyed` keeps the keys' own)
    SELECT 'express' AS course, w.* FROM stg_supabase_main.express_course_sales w
    WHERE w._deleted_at IS NULL
      AND (core.on_int_keys(w.amocrm_lead_id, 'deal', %(keys)s)
           OR w.id = ANY(core.key_ids(%(keys)s, 'deal:express')))
    UNION ALL
    SELECT 'flagship', w.* FROM stg_supabase_main.flagship_course_sales w
    WHERE w._deleted_at IS NULL
      AND (core.on_int_keys(w.amocrm_lead_id, 'deal', %(keys)s)
           OR w.id = ANY(core.key_ids(%(keys)s, 'deal:flagship')))
), keyed AS (
    -- the same webhook delivered twice is one sale; the first delivery stands for it
    SELECT * FROM (
        SELECT coalesce(w.amocrm_lead_id::text, w.course || ':' || w.id) AS deal_key, w.*
        FROM webhooks w
    ) k WHERE core.on_keys(k.deal_key, 'deal', %(keys)s)
), firsts AS (
    SELECT DISTINCT ON (deal_key) k.*, count(*) OVER (PARTITION BY deal_key) AS copies
    FROM keyed k ORDER BY deal_key, created_at, id
), course AS (
    SELECT f.*, a.id AS deal_id, a.pipeline_id AS deal_pipeline, a.status_id AS deal_status,
           a.price AS deal_price, l.id AS landing_id,
           CASE WHEN f.course = 'express' THEN %(express)s::bigint ELSE %(flagship)s::bigint END
               AS course_pipeline,
           l.utm_source AS l_src, l.utm_medium AS l_med, l.utm_campaign AS l_camp,
           l.utm_content AS l_cont, l.utm_term AS l_term,
           a.utm_source AS a_src, a.utm_medium AS a_med, a.utm_campaign AS a_camp,
           a.utm_content AS a_cont, a.utm_term AS a_term
    FROM firsts f
    LEFT JOIN raw_amocrm.leads a ON a.id = f.amocrm_lead_id
    LEFT JOIN LATERAL (
        SELECT * FROM stg_supabase_main.landing_leads l0
        WHERE l0.amocrm_lead_id = f.amocrm_lead_id ORDER BY l0.id LIMIT 1
    ) l ON true
)
SELECT 'deal:' || c.deal_key AS sale_key, 'webhook' AS source,
       coalesce(CASE c.deal_pipeline WHEN %(express)s THEN 'express'
                                     WHEN %(flagship)s THEN 'flagship' END, c.course) AS funnel,
       c.amocrm_lead_id, c.created_at AS sold_at,
       (c.created_at AT TIME ZONE %(tz)s)::date AS report_day,
       coalesce(c.amount, c.deal_price) AS amount, coalesce(c.currency, %(currency)s) AS currency,
       c.copies AS webhook_rows, c.pipeline_id AS webhook_pipeline_id,
       c.deal_pipeline AS amocrm_pipeline_id, c.deal_status AS amocrm_status_id,
       c.pipeline_id IS DISTINCT FROM coalesce(c.deal_pipeline, c.course_pipeline)
           AS pipeline_mismatch,
       EXISTS (SELECT 1 FROM stg_supabase_traffic.all_sales_tracking t
               WHERE t.amocrm_lead_id = c.amocrm_lead_id AND t._deleted_at IS NULL) AS tracked,
       -- the sale's UTM is its lead's: the landing lead's, else the deal's, else the webhook's
       u.src AS utm_source, u.med AS utm_medium, u.camp AS utm_campaign,
       u.cont AS utm_content, u.term AS utm_term,
       core.attribute(u.src, u.med, u.camp, u.cont, u.term) AS targetologist
FROM course c
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES
        (1, c.landing_id IS NOT NULL, c.l_src, c.l_med, c.l_camp, c.l_cont, c.l_term),
        (2, c.deal_id IS NOT NULL, c.a_src, c.a_med, c.a_camp, c.a_cont, c.a_term),
        (3, true, c.utm_source, c.utm_medium, c.utm_campaign, c.utm_content, c.utm_term)
    ) AS v(rank, present, src, med, camp, cont, term)
    WHERE present ORDER BY rank LIMIT 1
) u
UNION ALL
SELECT 'deal:' || a.id, 'amocrm',
       CASE a.pipeline_id WHEN %(express)s THEN 'express' ELSE 'flagship' END,
       a.id, coalesce(a.closed_at, a.updated_at),
       (coalesce(a.closed_at, a.updated_at) AT TIME ZONE %(tz)s)::date,
       coalesce(a.price, 0), %(currency)s, 0, NULL, a.pipeline_id, a.status_id, false,
       EXISTS (SELECT 1 FROM stg_supabase_traffic.all_sales_tracking t
               WHERE t.amocrm_lead_id = a.id AND t._deleted_at IS NULL),
       a.utm_source, a.utm_medium, a.utm_campaign, a.utm_content, a.utm_term,
       core.attribute(a.utm_source, a.utm_medium, a.utm_campaign, a.utm_content, a.utm_term)
FROM raw_amocrm.leads a
WHERE a._deleted_at IS NULL AND a.status_id = %(won_status)s AND a.pipeline_id IN (%(express)s, %(flagship)s)
  AND core.on_int_keys(a.id, 'deal', %(keys)s)
  AND NOT EXISTS (SELECT 1 FROM keyed k WHERE k.amocrm_lead_id = a.id)
UNION ALL
SELECT 'tripwire:' || p.id, 'tripwire', 'tripwire', NULL, p.created_at,
       (p.created_at AT TIME ZONE %(tz)s)::date, p.amount, p.currency, 0, NULL, NULL, NULL, false,
       EXISTS (SELECT 1 FROM stg_supabase_traffic.all_sales_tracking t
               WHERE t.product = 'tripwire' AND t.sold_at = p.created_at
                 AND t._deleted_at IS NULL),
       u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term,
       core.attribute(u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term)
FROM stg_supabase_tripwire.tripwire_purchases p
LEFT JOIN stg_supabase_tripwire.tripwire_users u ON u.id = p.user_id
WHERE p._deleted_at IS NULL AND p.status = 'paid'
  AND core.on_keys(p.id, 'tripwire', %(keys)s)

-- Per course funnel: won deals in AmoCRM, deals with a webhook sale, deals in all_sales_tracking; the three should agree.
WITH won AS (
    SELECT id, CASE pipeline_id WHEN %(express)s THEN 'express' ELSE 'flagship' END AS funnel
    FROM raw_amocrm.leads
    WHERE _deleted_at IS NULL AND status_id = %(won_status)s AND pipeline_id IN (%(express)s, %(flagship)s)
), webhook AS (
    SELECT DISTINCT amocrm_lead_id AS id, 'express' AS funnel
    FROM stg_supabase_main.express_course_sales WHERE _deleted_at IS NULL
    UNION
    SELECT DISTINCT amocrm_lead_id, 'flagship'
    FROM stg_supabase_main.flagship_course_sales WHERE _deleted_at IS NULL
), tracked AS (
    SELECT DISTINCT amocrm_lead_id AS id, product AS funnel
    FROM stg_supabase_traffic.all_sales_tracking
    WHERE _deleted_at IS NULL AND product IN ('express', 'flagship')
)
SELECT f.funnel,
       (SELECT count(*) FROM won w WHERE w.funnel = f.funnel) AS amocrm_won,
       (SELECT count(*) FROM webhook h WHERE h.funnel = f.funnel) AS webhook_sales,
       (SELECT count(*) FROM tracked t WHERE t.funnel = f.funnel) AS tracked_sales,
       (SELECT count(*) FROM won w WHERE w.funnel = f.funnel
          AND NOT EXISTS (SELECT 1 FROM webhook h WHERE h.id = w.id)) AS won_without_webhook,
       (SELECT count(*) FROM webhook h WHERE h.funnel = f.funnel
          AND NOT EXISTS (SELECT 1 FROM tracked t WHERE t.id = h.id)) AS webhook_not_tracked
FROM (VALUES ('express'), ('flagship')) AS f(funnel)
ORDER BY f.funnel

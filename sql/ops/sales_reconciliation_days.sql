-- Per course funnel and reporting day: won deals (by close time), webhook sales and tracked sales, only the days where they disagree.
WITH won AS (
    SELECT CASE pipeline_id WHEN %(express)s THEN 'express' ELSE 'flagship' END AS funnel,
           (closed_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
    FROM raw_amocrm.leads
    WHERE _deleted_at IS NULL AND status_id = %(won_status)s AND pipeline_id IN (%(express)s, %(flagship)s)
    GROUP BY 1, 2
), hooks AS (
    SELECT funnel, (min(created_at) AT TIME ZONE %(tz)s)::date AS day, amocrm_lead_id
    FROM (SELECT 'express' AS funnel, * FROM stg_supabase_main.express_course_sales
          WHERE _deleted_at IS NULL
          UNION ALL
          SELECT 'flagship', * FROM stg_supabase_main.flagship_course_sales
          WHERE _deleted_at IS NULL) w
    GROUP BY funnel, amocrm_lead_id
), webhook AS (
    SELECT funnel, day, count(*) AS n FROM hooks GROUP BY 1, 2
), tracked AS (
    SELECT product AS funnel, (sold_at AT TIME ZONE %(tz)s)::date AS day,
           count(DISTINCT amocrm_lead_id) AS n
    FROM stg_supabase_traffic.all_sales_tracking
    WHERE _deleted_at IS NULL AND product IN ('express', 'flagship')
    GROUP BY 1, 2
)
SELECT coalesce(w.funnel, h.funnel, t.funnel) AS funnel, coalesce(w.day, h.day, t.day) AS day,
       coalesce(w.n, 0) AS amocrm_won, coalesce(h.n, 0) AS webhook_sales,
       coalesce(t.n, 0) AS tracked_sales
FROM won w
FULL JOIN webhook h ON h.funnel = w.funnel AND h.day = w.day
FULL JOIN tracked t ON t.funnel = coalesce(w.funnel, h.funnel) AND t.day = coalesce(w.day, h.day)
WHERE coalesce(w.n, 0) <> coalesce(h.n, 0) OR coalesce(h.n, 0) <> coalesce(t.n, 0)
ORDER BY 2, 1

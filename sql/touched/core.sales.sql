-- The rows of core.sales (their sale keys) that raw rows stamped after %(since)s may have
-- changed: a keyed build recomputes these sales, not whole days.
WITH webhooks AS (
    SELECT 'express' AS course, id, amocrm_lead_id FROM stg_supabase_main.express_course_sales
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    UNION ALL
    SELECT 'flagship', id, amocrm_lead_id FROM stg_supabase_main.flagship_course_sales
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), tracking AS (
    SELECT amocrm_lead_id, sold_at FROM stg_supabase_traffic.all_sales_tracking
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
)
-- a webhook's sale is its deal's; one naming no deal is its own sale (and it may have named
-- none at the last build, so its own key goes too)
SELECT 'deal:' || amocrm_lead_id AS sale_key FROM webhooks WHERE amocrm_lead_id IS NOT NULL
UNION SELECT 'deal:' || course || ':' || id FROM webhooks
-- a deal's state and UTM, its landing lead's UTM and its tracking reach the deal's sale
UNION SELECT 'deal:' || id FROM raw_amocrm.leads
      WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
UNION SELECT 'deal:' || amocrm_lead_id FROM stg_supabase_main.landing_leads
      WHERE (_loaded_at > %(since)s OR _deleted_at > %(since)s) AND amocrm_lead_id IS NOT NULL
UNION SELECT 'deal:' || amocrm_lead_id FROM tracking WHERE amocrm_lead_id IS NOT NULL
-- a purchase, its user's UTM, and a tracking row at its instant (whatever product it names
-- now: it may have named tripwire at the last build)
-- (three selects, not one with ORs: each is an index probe, the ORs a scan of every purchase)
UNION SELECT 'tripwire:' || id FROM stg_supabase_tripwire.tripwire_purchases
      WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
UNION SELECT 'tripwire:' || id FROM stg_supabase_tripwire.tripwire_purchases
      WHERE user_id IN (SELECT id FROM stg_supabase_tripwire.tripwire_users
                        WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s)
UNION SELECT 'tripwire:' || id FROM stg_supabase_tripwire.tripwire_purchases
      WHERE created_at IN (SELECT sold_at FROM tracking)

-- The report's "<Course> Course Webhook" and "<Course> Course Sales" figures for one webhook table (named by the caller as an identifier).
SELECT count(DISTINCT amocrm_lead_id) AS total_sales,
       count(DISTINCT amocrm_lead_id) FILTER (WHERE pipeline_id = %(pipeline)s) AS correct_pipeline,
       max(created_at) AS latest_sale,
       count(DISTINCT amocrm_lead_id) FILTER (WHERE utm_source IS NOT NULL) AS with_utm,
       count(DISTINCT amocrm_lead_id) FILTER (WHERE utm_source IS NULL) AS without_utm
FROM {table}
WHERE _deleted_at IS NULL

-- core.ad_spend_daily: Facebook spend per ad per day (the account's calendar day), in the account currency and converted to the reporting currency where a rate exists.
-- reads: raw_facebook.ad_insights_daily, stg_supabase_traffic.targetologist_utm_rules,
--        stg_supabase_traffic.targetologists (the last two through core.attribute)
SELECT i.ad_id, i.date, i.account_id, i.campaign_id, i.campaign_name,
       i.account_currency AS currency, i.spend,
       round(i.spend * CASE WHEN i.account_currency = %(currency)s THEN 1
                            ELSE (%(fx)s::jsonb ->> i.account_currency)::numeric END, 2)
           AS spend_reporting,
       i.impressions, i.clicks, i.leads AS fb_leads,
       -- an ad's spend goes to whoever its campaign and ad id would credit a lead to
       core.attribute(NULL, NULL, i.campaign_name, i.ad_id, NULL) AS targetologist
FROM raw_facebook.ad_insights_daily i
WHERE i._deleted_at IS NULL AND core.in_days(i.date, %(days)s)

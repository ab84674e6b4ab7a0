-- Indexes for the joins of the core models (sales link webhooks, deals, landing leads and
-- tracking by AmoCRM lead id); without them core.sales is quadratic.
CREATE INDEX landing_leads_amocrm_idx ON raw_supabase_main.landing_leads (amocrm_lead_id);
CREATE INDEX express_sales_amocrm_idx ON raw_supabase_main.express_course_sales (amocrm_lead_id);
CREATE INDEX flagship_sales_amocrm_idx ON raw_supabase_main.flagship_course_sales (amocrm_lead_id);
CREATE INDEX sales_tracking_amocrm_idx ON raw_supabase_traffic.all_sales_tracking (amocrm_lead_id);
CREATE INDEX sales_tracking_product_idx ON raw_supabase_traffic.all_sales_tracking (product, sold_at);
CREATE INDEX tripwire_purchases_user_idx ON raw_supabase_tripwire.tripwire_purchases (user_id);

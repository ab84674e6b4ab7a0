-- raw_amocrm.leads: mark the leads that lead_deleted events say were deleted (they vanish from /leads).
UPDATE raw_amocrm.leads l SET _deleted_at = %(stamp)s
FROM raw_amocrm.lead_events e
WHERE e.type = 'lead_deleted' AND e.entity_id = l.id AND l._deleted_at IS NULL

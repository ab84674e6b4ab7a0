-- A quarantined record PostgreSQL cannot hold as jsonb (a NUL, a lone surrogate, a number beyond
-- numeric) keeps its payload as JSON text with every non-ASCII character escaped, in record_text.
ALTER TABLE ops.quarantine ALTER COLUMN record DROP NOT NULL;
ALTER TABLE ops.quarantine ADD COLUMN record_text text;
ALTER TABLE ops.quarantine ADD CONSTRAINT quarantine_payload_present
    CHECK (record IS NOT NULL OR record_text IS NOT NULL);
-- records without a key (a page element that is not an object, a lead without id) are told
-- apart by their payload, so two of them are two rows
DROP INDEX ops.quarantine_record_uidx;
CREATE UNIQUE INDEX quarantine_record_uidx ON ops.quarantine (source, entity,
    (coalesce(record_key, '#' || md5(coalesce(record::text, record_text)))), reason);

-- shiftlog:no-transaction
-- Phase 3 (after the backfill is verified): make the column mandatory
-- without a long lock. Each statement commits on its own (no-transaction),
-- so no strong lock is held across the scan: a CHECK added NOT VALID takes
-- only a brief lock; VALIDATE scans without blocking writes; SET NOT NULL
-- then uses the validated constraint instead of scanning the table again
-- (PostgreSQL 12+).
ALTER TABLE users ADD CONSTRAINT users_email_lower_not_null CHECK (email_lower IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_lower_not_null;
ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_email_lower_not_null;

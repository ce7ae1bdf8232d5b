-- Phase 1 (before the app deploy): additive and backward compatible.
-- The new column is nullable; a trigger keeps it right for every row the
-- application writes from now on (dual write), and the backfill
-- (backfills/20261105120000_users_email_lower.toml) fills the existing rows.
ALTER TABLE users ADD COLUMN email_lower text;

CREATE FUNCTION users_email_lower_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email_lower := lower(NEW.email);
    RETURN NEW;
END
$$;

CREATE TRIGGER users_email_lower_sync
    BEFORE INSERT OR UPDATE OF email ON users
    FOR EACH ROW EXECUTE FUNCTION users_email_lower_sync();

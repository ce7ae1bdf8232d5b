DROP TRIGGER users_email_lower_sync ON users;
DROP FUNCTION users_email_lower_sync();
ALTER TABLE users DROP COLUMN email_lower;

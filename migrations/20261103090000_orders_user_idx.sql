-- shiftlog:no-transaction
-- Built without blocking writes; a failure leaves an INVALID index that
-- shiftlog reports with the exact DROP INDEX CONCURRENTLY to run.
CREATE INDEX CONCURRENTLY orders_user_id_idx ON orders (user_id);

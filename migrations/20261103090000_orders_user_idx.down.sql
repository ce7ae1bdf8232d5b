-- shiftlog:no-transaction
DROP INDEX CONCURRENTLY orders_user_id_idx;

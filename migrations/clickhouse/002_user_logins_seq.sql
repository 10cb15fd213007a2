-- _seq: the event's position in its transaction (transaction.total_order),
-- which orders the events of one commit: a truncate deletes the rows before
-- it in its own transaction and spares those after it (docs/design.md,
-- "Versions and order"). Rows already there read 0. The sink adds the column
-- by itself to any table it writes that lacks it; 18.16 has no ADD COLUMN IF
-- NOT EXISTS, so the migrator treats "column already exists" as applied.
ALTER TABLE user_logins ADD COLUMN _seq UInt64 DEFAULT 0 AFTER _version;

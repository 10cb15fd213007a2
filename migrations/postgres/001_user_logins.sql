-- The seed's table, exactly (shared/seed/README.en.md, step 1).
CREATE TABLE IF NOT EXISTS user_logins (
    id SERIAL PRIMARY KEY,
    username TEXT,
    event_type TEXT,
    event_time TIMESTAMP,
    sent_to_kafka BOOLEAN DEFAULT FALSE
);

-- A table created earlier without the flag column gets it (seed, step 1).
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS sent_to_kafka BOOLEAN DEFAULT FALSE;

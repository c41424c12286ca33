-- The gateway's waiting room: buyers admitted per minute from sale_starts_at; NULL means none.
ALTER TABLE events
    ADD COLUMN admission_per_minute INTEGER CHECK (admission_per_minute BETWEEN 1 AND 1000000);

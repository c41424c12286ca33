-- Until when buyers may cancel a paid booking: minutes before starts_at (0: until the
-- start); NULL means never (all sales final). Existing events keep the default.
ALTER TABLE events
    ADD COLUMN buyer_cancellation_cutoff_minutes INTEGER DEFAULT 0
        CHECK (buyer_cancellation_cutoff_minutes BETWEEN 0 AND 525600);

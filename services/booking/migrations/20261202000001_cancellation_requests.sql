-- A paid booking's cancellation under way: asked for, its tickets not yet revoked. The
-- booking stays 'confirmed' until notification has revoked them; a sweeper finishes
-- requests whose replica died in between.
ALTER TABLE bookings
    ADD COLUMN cancel_requested_at TIMESTAMPTZ,
    ADD COLUMN cancel_requested_by UUID,
    ADD COLUMN cancel_forced       BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN cancel_detail       TEXT    NOT NULL DEFAULT '';

CREATE INDEX bookings_cancelling ON bookings (cancel_requested_at) WHERE cancel_requested_at IS NOT NULL;

-- Bookings: one per hold, priced when created, moved through the saga's states.
CREATE TABLE bookings (
    id                  UUID        PRIMARY KEY,
    user_id             UUID        NOT NULL,
    event_id            UUID        NOT NULL,
    -- A hold backs at most one booking.
    hold_id             TEXT        NOT NULL UNIQUE,
    fencing_token       BIGINT      NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN
                            ('pending_payment', 'confirmed', 'cancelled', 'expired', 'refund_pending', 'refunded')),
    currency            TEXT        NOT NULL,
    total_minor         BIGINT      NOT NULL CHECK (total_minor >= 0),
    expires_at          TIMESTAMPTZ NOT NULL,
    -- The payment that succeeded for it (also set when a late payment is refunded).
    payment_id          UUID,
    -- Set when a refund was asked of payment (confirmed and cancelled, or paid too late).
    refund_requested_at TIMESTAMPTZ,
    cancellation_reason TEXT        NOT NULL DEFAULT '',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX bookings_by_user ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX bookings_by_event ON bookings (event_id, created_at DESC, id DESC);

-- One row per ticket, prices copied at creation so later changes never alter a booking.
CREATE TABLE line_items (
    id               UUID    PRIMARY KEY,
    booking_id       UUID    NOT NULL REFERENCES bookings (id),
    position         INTEGER NOT NULL,
    category_id      UUID    NOT NULL,
    seat_id          UUID,
    label            TEXT    NOT NULL,
    unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor >= 0),
    UNIQUE (booking_id, position)
);

-- Who organizes each event, from catalog.events: organizers list their events' bookings.
CREATE TABLE events (
    id           UUID    PRIMARY KEY,
    organizer_id UUID    NOT NULL,
    cancelled    BOOLEAN NOT NULL DEFAULT false
);

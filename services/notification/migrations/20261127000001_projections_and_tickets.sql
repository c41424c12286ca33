-- What notification learns from other services' events. Each table is a projection:
-- written only by the consumers, replayable, and never the source of truth.

-- Who to write to, from identity's UserRegistered.
CREATE TABLE users (
    user_id      UUID        PRIMARY KEY,
    email        TEXT        NOT NULL,
    display_name TEXT        NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Who organizes what (check-in rights) and what to call it in emails, from catalog's
-- EventPublished/EventUpdated; `version` keeps an older change from overwriting a newer one.
CREATE TABLE events (
    event_id     UUID        PRIMARY KEY,
    organizer_id UUID        NOT NULL,
    name         TEXT        NOT NULL,
    starts_at    TIMESTAMPTZ,
    time_zone    TEXT        NOT NULL,
    version      BIGINT      NOT NULL
);

-- The bookings seen on booking.events and payment.events: their owner (who may read
-- their tickets and deliveries) and whether their tickets are revoked. A revocation may
-- arrive before the confirmation; the tickets are then issued already revoked.
CREATE TABLE bookings (
    booking_id    UUID        PRIMARY KEY,
    user_id       UUID        NOT NULL,
    event_id      UUID,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT
);

-- Ed25519 keys that sign ticket codes. One is active; retired ones stay published so
-- tickets signed with them keep verifying.
CREATE TABLE ticket_signing_keys (
    kid         TEXT        PRIMARY KEY,
    private_key BYTEA       NOT NULL CHECK (length(private_key) = 32), -- the Ed25519 seed
    public_key  BYTEA       NOT NULL CHECK (length(public_key) = 32),
    state       TEXT        NOT NULL CHECK (state IN ('active', 'retired')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX ticket_signing_keys_one_active ON ticket_signing_keys (state) WHERE state = 'active';

-- One ticket per booking line item. `code` is the signed string in the QR code; a
-- ticket is scanned at most once (`scanned_at` is set by one conditional UPDATE).
CREATE TABLE tickets (
    ticket_id    UUID        PRIMARY KEY, -- the booking line item id
    booking_id   UUID        NOT NULL,
    position     INT         NOT NULL, -- the line item's place in the booking
    user_id      UUID        NOT NULL,
    event_id     UUID        NOT NULL,
    category_id  UUID        NOT NULL,
    seat_id      UUID,
    seat_label   TEXT        NOT NULL,
    code         TEXT        NOT NULL,
    issued_at    TIMESTAMPTZ NOT NULL,
    scanned_at   TIMESTAMPTZ,
    scanned_gate TEXT,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX tickets_booking ON tickets (booking_id);

-- Every check of an identified ticket, for disputes at the gate.
CREATE TABLE ticket_scans (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id  UUID        NOT NULL,
    event_id   UUID        NOT NULL, -- the event the gate admits to
    gate_id    TEXT        NOT NULL,
    scanned_by UUID        NOT NULL,
    result     TEXT        NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX ticket_scans_ticket ON ticket_scans (ticket_id);

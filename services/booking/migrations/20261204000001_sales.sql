-- The sales ledger: booking's read model of what an event sold and refunded, one row per
-- ticket sold (its booking confirmed) and per ticket refunded (its booking refunded in
-- full), written in the transaction of that transition. Append-only, so confirmations on
-- a hot on-sale never contend on a counter row; reports aggregate it by event and time.
CREATE TABLE sales (
    line_item_id UUID        NOT NULL REFERENCES line_items (id),
    kind         TEXT        NOT NULL CHECK (kind IN ('sold', 'refunded')),
    booking_id   UUID        NOT NULL REFERENCES bookings (id),
    event_id     UUID        NOT NULL,
    category_id  UUID        NOT NULL,
    currency     TEXT        NOT NULL,
    amount_minor BIGINT      NOT NULL CHECK (amount_minor >= 0),
    at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (line_item_id, kind)
);

CREATE INDEX sales_by_event ON sales (event_id, at);

-- What the CSV export shows of each booking.
ALTER TABLE bookings
    ADD COLUMN confirmed_at   TIMESTAMPTZ,
    ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0);

-- Bookings sold before the ledger: their confirmation time was not kept, so they count as
-- sold when they were created (a hold lasts minutes), and refunded when last written.
UPDATE bookings SET confirmed_at = created_at WHERE status IN ('confirmed', 'refund_pending', 'refunded');
UPDATE bookings SET refunded_minor = total_minor WHERE status = 'refunded';
INSERT INTO sales (line_item_id, kind, booking_id, event_id, category_id, currency, amount_minor, at)
SELECT li.id, 'sold', b.id, b.event_id, li.category_id, b.currency, li.unit_price_minor, b.confirmed_at
FROM bookings b JOIN line_items li ON li.booking_id = b.id
WHERE b.confirmed_at IS NOT NULL;
INSERT INTO sales (line_item_id, kind, booking_id, event_id, category_id, currency, amount_minor, at)
SELECT li.id, 'refunded', b.id, b.event_id, li.category_id, b.currency, li.unit_price_minor, b.updated_at
FROM bookings b JOIN line_items li ON li.booking_id = b.id
WHERE b.status = 'refunded';

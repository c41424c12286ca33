-- What payment knows about bookings: a projection of booking.events. A row may be
-- created by a later event (e.g. BookingCancelled) before its BookingCreated arrives;
-- total and expiry are then filled in later, and the status never moves backwards.
CREATE TABLE bookings (
    id            UUID        PRIMARY KEY,
    user_id       UUID        NOT NULL,
    event_id      UUID        NOT NULL,
    -- NULL until BookingCreated (or BookingConfirmed) has been seen.
    currency      TEXT,
    total_minor   BIGINT,
    expires_at    TIMESTAMPTZ,
    status        TEXT        NOT NULL
                  CHECK (status IN ('pending_payment', 'confirmed', 'cancelled', 'expired', 'refunded')),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Charges. `id` is also the provider's idempotency key for this charge.
CREATE TABLE payments (
    id                  UUID        PRIMARY KEY,
    booking_id          UUID        NOT NULL,
    user_id             UUID        NOT NULL,
    currency            TEXT        NOT NULL,
    amount_minor        BIGINT      NOT NULL CHECK (amount_minor > 0),
    -- Sum of succeeded refunds; never more than the amount.
    refunded_minor      BIGINT      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    status              TEXT        NOT NULL
                        CHECK (status IN ('pending', 'succeeded', 'failed', 'unknown', 'refunded', 'partially_refunded')),
    provider            TEXT        NOT NULL,
    -- Kept to resubmit (under the same provider key) a charge the provider never received.
    card_token          TEXT        NOT NULL,
    provider_reference  TEXT        NOT NULL DEFAULT '',
    failure_code        TEXT        NOT NULL DEFAULT '',
    failure_message     TEXT        NOT NULL DEFAULT '',
    -- The caller's Charge idempotency key, so a retry under it finds this payment.
    idempotency_key     TEXT        NOT NULL DEFAULT '',
    -- When the reconciler may next look at a pending or unknown payment.
    next_check_at       TIMESTAMPTZ NOT NULL,
    checks              INTEGER     NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- At most one charge per booking that is not a definite failure: a booking is never
-- charged twice, whatever the concurrency or idempotency keys.
CREATE UNIQUE INDEX payments_one_live_per_booking ON payments (booking_id)
    WHERE status IN ('pending', 'unknown', 'succeeded', 'refunded', 'partially_refunded');
CREATE INDEX payments_by_booking ON payments (booking_id, created_at DESC);
CREATE INDEX payments_to_reconcile ON payments (next_check_at) WHERE status IN ('pending', 'unknown');

-- Refunds. `id` is also the provider's idempotency key for this refund.
CREATE TABLE refunds (
    id                  UUID        PRIMARY KEY,
    payment_id          UUID        NOT NULL REFERENCES payments (id),
    -- BookingRefundRequested.refund_request_id, or the Refund call's idempotency key;
    -- empty when neither was given.
    request_id          TEXT        NOT NULL DEFAULT '',
    currency            TEXT        NOT NULL,
    amount_minor        BIGINT      NOT NULL CHECK (amount_minor > 0),
    status              TEXT        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason              TEXT        NOT NULL DEFAULT '',
    provider            TEXT        NOT NULL,
    provider_reference  TEXT        NOT NULL DEFAULT '',
    failure_code        TEXT        NOT NULL DEFAULT '',
    failure_message     TEXT        NOT NULL DEFAULT '',
    next_check_at       TIMESTAMPTZ NOT NULL,
    checks              INTEGER     NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX refunds_one_per_request ON refunds (payment_id, request_id) WHERE request_id <> '';
CREATE INDEX refunds_by_payment ON refunds (payment_id);
CREATE INDEX refunds_to_reconcile ON refunds (next_check_at) WHERE status = 'pending';

-- Provider webhook events already processed: each takes effect once.
CREATE TABLE webhook_events (
    provider     TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

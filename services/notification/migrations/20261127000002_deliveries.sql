-- The delivery log: one row per message a consumed event causes, written in the
-- consumer's transaction (so a redelivered event, or a replay, adds nothing: the id is
-- a UUID v5 of the source event id and the template) and sent afterwards by the
-- dispatcher, which claims due rows with a lease, sends, then records the outcome.
CREATE TABLE deliveries (
    id              UUID        PRIMARY KEY, -- also the email's Message-ID
    source_event_id UUID        NOT NULL,
    template        TEXT        NOT NULL,
    channel         TEXT        NOT NULL DEFAULT 'email' CHECK (channel IN ('email')),
    recipient       TEXT        NOT NULL,
    user_id         UUID,
    booking_id      UUID,
    -- What the template renders; rendering happens at send time.
    context         JSONB       NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'retrying', 'sent', 'failed')),
    -- Attempts started (counted when claimed, so a crash mid-send counts too).
    attempts        INT         NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The claim of the replica sending it, and until when that claim holds.
    claim           UUID,
    claimed_until   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (source_event_id, template)
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_booking ON deliveries (booking_id) WHERE booking_id IS NOT NULL;

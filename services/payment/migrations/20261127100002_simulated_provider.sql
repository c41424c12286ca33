-- The simulated provider's own ledger. It lives in payment's database so that every
-- replica shares it and it survives restarts; like a real processor it dedupes on the
-- idempotency key, so a charge or refund happens at most once per key.
CREATE TABLE simulated_charges (
    idempotency_key  TEXT        PRIMARY KEY,
    id               TEXT        NOT NULL UNIQUE,
    card_token       TEXT        NOT NULL,
    currency         TEXT        NOT NULL,
    amount_minor     BIGINT      NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code     TEXT        NOT NULL DEFAULT '',
    failure_message  TEXT        NOT NULL DEFAULT '',
    -- Until then the charge is still processing (the slow test card).
    settles_at       TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Keys whose first attempt failed with a processor error (the flaky test card).
CREATE TABLE simulated_failed_attempts (
    idempotency_key  TEXT        PRIMARY KEY,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE simulated_refunds (
    idempotency_key  TEXT        PRIMARY KEY,
    id               TEXT        NOT NULL UNIQUE,
    charge_id        TEXT        NOT NULL REFERENCES simulated_charges (id),
    amount_minor     BIGINT      NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code     TEXT        NOT NULL DEFAULT '',
    failure_message  TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

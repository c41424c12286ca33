-- Stripe-style idempotency keys: the first response to a (scope, caller, key) is
-- kept and replayed; the same key with a different request is refused. Rows are
-- purged after the retention (at least 24 h) by `idempotency::purge`.
CREATE TABLE idempotency_keys (
    scope        TEXT        NOT NULL,
    caller       UUID        NOT NULL,
    key          TEXT        NOT NULL,
    -- SHA-256 of the request without its key.
    fingerprint  BYTEA       NOT NULL,
    state        TEXT        NOT NULL CHECK (state IN ('started', 'completed')),
    -- A started row whose owner died is taken over after a while.
    locked_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The response: a gRPC code (0 = OK), the encoded message, or the error message.
    code         INTEGER,
    body         BYTEA,
    message      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, caller, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

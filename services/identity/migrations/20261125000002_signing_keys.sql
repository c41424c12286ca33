-- Ed25519 token signing keys. One `active` key signs; one `next` key is
-- already published in the JWKS so verifiers know it before it signs;
-- `retired` keys stay published until every token they signed has expired.
CREATE TABLE signing_keys (
    kid          TEXT        PRIMARY KEY,
    private_key  BYTEA       NOT NULL, -- PKCS#8 DER
    public_key   BYTEA       NOT NULL CHECK (length(public_key) = 32),
    state        TEXT        NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at   TIMESTAMPTZ
);

CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

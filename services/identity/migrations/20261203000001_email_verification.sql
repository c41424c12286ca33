-- Email verification (issue 16, finding 5). Accounts that exist before this migration are
-- grandfathered as verified: they were made before verification existed, and refusing
-- their holds at once would lock real buyers out of sales they are in.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email_verified_at = created_at;

-- Outstanding verification tokens, stored as SHA-256 hashes: a copy of this table verifies
-- nobody. A token is deleted when used, and with every other token of its user.
CREATE TABLE email_verifications (
    token_hash BYTEA       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX email_verifications_user ON email_verifications (user_id);

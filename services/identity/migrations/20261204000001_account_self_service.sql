-- Account self-service (issue 19, ADR 0044).

-- A deleted account keeps its row, erased, as a tombstone: its id stays in other services'
-- records (bookings, tickets) as an opaque id, and no new account can ever get it. The
-- email becomes `deleted:<id>` (no `@`, so no address collides with it and the real one is
-- free to register again), the name empty, the password hash gone, the role `user`.
ALTER TABLE users
    ADD COLUMN deleted_at TIMESTAMPTZ,
    ALTER COLUMN password_hash DROP NOT NULL,
    ADD CONSTRAINT users_erased_when_deleted
        CHECK (deleted_at IS NULL OR (password_hash IS NULL AND display_name = '' AND role = 'user'
                                      AND email = 'deleted:' || id::text)),
    ADD CONSTRAINT users_password_unless_deleted CHECK (deleted_at IS NOT NULL OR password_hash IS NOT NULL);

-- Outstanding password reset tokens, stored as SHA-256 hashes like the verification tokens:
-- a copy of this table resets nobody's password. A token is deleted when used, with every
-- other token of its user, when a newer one is issued, and when the password changes.
CREATE TABLE password_resets (
    token_hash BYTEA       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX password_resets_user ON password_resets (user_id);

-- Social login with OpenID Connect (issue 19, ADR 0045).

-- Which provider account signs in as which user: a provider's subject (`sub`) is stable
-- and unique per issuer, unlike its email. A user may have links to several providers,
-- and a link outlives email changes at the provider. Deleting an account deletes its
-- links (the row stays as a tombstone, so this is done by the deletion, not a cascade).
CREATE TABLE oidc_links (
    provider   TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);

CREATE INDEX oidc_links_user ON oidc_links (user_id);

-- An account created by a social login has no password until its owner sets one through
-- a reset link; a live account without a password cannot sign in with one.
ALTER TABLE users DROP CONSTRAINT users_password_unless_deleted;

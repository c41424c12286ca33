-- A user who deleted their account (identity's UserDeleted, ADR 0044) keeps a row with no
-- email and no name, so a replayed UserRegistered cannot bring the address back and
-- booking emails for them are dropped instead of waiting for an address that never comes.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;

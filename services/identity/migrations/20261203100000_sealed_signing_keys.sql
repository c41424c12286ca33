-- Private keys are stored sealed with the service's KEK (ADR 0032). Identity seals
-- rows still in plaintext at start-up and empties `private_key`; a later release
-- drops the column once every deployment has started this one.
ALTER TABLE signing_keys
    ADD COLUMN sealed_private_key BYTEA, -- crates/platform `sealing`: the PKCS#8 DER, sealed
    ALTER COLUMN private_key DROP NOT NULL,
    ADD CONSTRAINT signing_keys_private_key_once CHECK (num_nonnulls(private_key, sealed_private_key) = 1);

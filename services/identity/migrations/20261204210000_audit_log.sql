-- The audit log of privileged actions (issue 19, ADR 0046): every service's `AuditRecord`
-- from `audit.events`, appended in order and chained by hashes. Entry n carries the hash of
-- entry n - 1 (`prev_hash`) and its own, SHA-256(prev_hash || its fields), so altering,
-- inserting or removing an entry breaks the chain from there on, which `VerifyAuditLog`
-- finds. The triggers below make the table append-only for everyone but the retention job.
CREATE TABLE audit_log (
    -- 1, 2, 3… without gaps: the appender takes the head under a table lock.
    seq            BIGINT      PRIMARY KEY CHECK (seq > 0),
    id             UUID        NOT NULL UNIQUE,
    occurred_at    TIMESTAMPTZ NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    service        TEXT        NOT NULL,
    actor_id       UUID        NOT NULL,
    actor_roles    TEXT[]      NOT NULL,
    action         TEXT        NOT NULL,
    target_type    TEXT        NOT NULL,
    target_id      TEXT        NOT NULL,
    client_address TEXT        NOT NULL,
    user_agent     TEXT        NOT NULL,
    peer_address   TEXT        NOT NULL,
    -- JSON objects as the producer wrote them (text, not jsonb: the hash covers these bytes).
    before         TEXT        NOT NULL,
    after          TEXT        NOT NULL,
    trace_id       TEXT        NOT NULL,
    prev_hash      BYTEA       NOT NULL CHECK (length(prev_hash) = 32),
    hash           BYTEA       NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_occurred ON audit_log (occurred_at);

-- Where the chain starts: the last entry retention removed (seq 0 and zeros before any was).
-- Verification starts from it. One row, which moves only forward, onto an entry of the log.
CREATE TABLE audit_anchor (
    only_row BOOLEAN     PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      BIGINT      NOT NULL,
    hash     BYTEA       NOT NULL CHECK (length(hash) = 32),
    moved_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO audit_anchor (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- An entry must continue the chain: the next seq, and the previous entry's (or the
-- anchor's) hash. The hash itself is checked by verification, which knows the fields' form.
CREATE FUNCTION audit_log_continues() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash BYTEA;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT seq, hash INTO head_seq, head_hash FROM audit_anchor;
    END IF;
    IF NEW.seq <> head_seq + 1 OR NEW.prev_hash <> head_hash THEN
        RAISE EXCEPTION 'audit_log entry % does not continue the chain at %', NEW.seq, head_seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chained BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_continues();

-- No UPDATE, and DELETE only of entries the anchor has passed (retention moves the anchor
-- first, then deletes up to it).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT seq FROM audit_anchor) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE FUNCTION audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

-- The anchor moves forward only, and only onto an entry that is in the log with its hash.
CREATE FUNCTION audit_anchor_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.only_row AND NEW.seq > OLD.seq
       AND NEW.hash = (SELECT hash FROM audit_log WHERE seq = NEW.seq) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit anchor moves only forward, onto an entry of the log'
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_forward_only();

CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

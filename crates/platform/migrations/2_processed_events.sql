-- Consumer dedupe: one row per (consumer, event id), written in the same
-- transaction as the consumer's own changes.
CREATE TABLE processed_events (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

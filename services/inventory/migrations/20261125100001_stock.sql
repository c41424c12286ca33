-- Stock as published by catalog, and the sold ledger: the final arbiter of who
-- owns what. Redis holds live availability and holds; it can always be rebuilt
-- from these tables (holds excepted: buyers retry).

CREATE TABLE events (
    event_id        UUID        PRIMARY KEY,
    organizer_id    UUID        NOT NULL,
    sale_starts_at  TIMESTAMPTZ NOT NULL,
    sale_ends_at    TIMESTAMPTZ NOT NULL,
    per_user_limit  INT         NOT NULL CHECK (per_user_limit > 0),
    state           TEXT        NOT NULL CHECK (state IN ('published', 'on_sale', 'closed', 'cancelled')),
    version         BIGINT      NOT NULL,
    -- Fencing tokens at or below this were issued before the last Redis rebuild.
    fence_floor     BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE categories (
    event_id     UUID    NOT NULL REFERENCES events ON DELETE CASCADE,
    category_id  UUID    NOT NULL,
    seated       BOOLEAN NOT NULL,
    capacity     INT     NOT NULL CHECK (capacity >= 0),
    -- General admission: the checked counter that forbids overselling.
    sold         INT     NOT NULL DEFAULT 0 CHECK (sold >= 0 AND sold <= capacity),
    PRIMARY KEY (event_id, category_id)
);

CREATE TABLE seats (
    event_id     UUID NOT NULL,
    seat_id      UUID NOT NULL,
    category_id  UUID NOT NULL,
    -- Best-first order within the category, and adjacency: same row, positions one apart.
    rank         INT  NOT NULL,
    row_id       TEXT NOT NULL,
    position     INT  NOT NULL,
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (event_id, category_id) REFERENCES categories
);

-- Confirmed holds (sales), one row per hold.
CREATE TABLE sales (
    hold_id        TEXT        PRIMARY KEY,
    event_id       UUID        NOT NULL REFERENCES events,
    user_id        UUID        NOT NULL,
    booking_id     TEXT        NOT NULL,
    fencing_token  BIGINT      NOT NULL,
    -- [{"category_id": .., "quantity": .., "seat_ids": [..]}]
    lines          JSONB       NOT NULL,
    quantity       INT         NOT NULL CHECK (quantity > 0),
    state          TEXT        NOT NULL CHECK (state IN ('sold', 'restocked')),
    confirmed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    restocked_at   TIMESTAMPTZ
);

CREATE INDEX sales_by_event_user ON sales (event_id, user_id) WHERE state = 'sold';

-- A seat is sold at most once: the unique key is the final arbiter.
CREATE TABLE sold_seats (
    event_id  UUID NOT NULL,
    seat_id   UUID NOT NULL,
    hold_id   TEXT NOT NULL REFERENCES sales,
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (event_id, seat_id) REFERENCES seats
);

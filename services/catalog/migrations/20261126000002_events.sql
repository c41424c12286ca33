-- Events, their ticket categories and the seats each seated category sells.
CREATE TABLE events (
    id                  UUID        PRIMARY KEY,
    organizer_id        UUID        NOT NULL,
    venue_id            UUID        NOT NULL REFERENCES venues,
    -- Copied from the venue (whose name never changes) so the search vector
    -- can be a generated column, which may only read its own row.
    venue_name          TEXT        NOT NULL,
    name                TEXT        NOT NULL,
    description         TEXT        NOT NULL,
    starts_at           TIMESTAMPTZ NOT NULL,
    ends_at             TIMESTAMPTZ NOT NULL,
    time_zone           TEXT        NOT NULL,
    -- Optional while DRAFT; publishing requires both.
    sale_starts_at      TIMESTAMPTZ,
    sale_ends_at        TIMESTAMPTZ,
    per_user_limit      INTEGER     NOT NULL CHECK (per_user_limit >= 1),
    status              TEXT        NOT NULL
        CHECK (status IN ('draft', 'published', 'on_sale', 'closed', 'cancelled')),
    version             BIGINT      NOT NULL DEFAULT 1,
    cancellation_reason TEXT        NOT NULL DEFAULT '',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at        TIMESTAMPTZ,
    search              TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(to_tsvector('english', venue_name), 'B')
        || setweight(to_tsvector('english', description), 'C')
    ) STORED,
    CHECK (starts_at < ends_at),
    CHECK (sale_starts_at IS NULL OR sale_ends_at IS NULL OR sale_starts_at < sale_ends_at),
    CHECK (status = 'draft' OR (sale_starts_at IS NOT NULL AND sale_ends_at IS NOT NULL))
);

CREATE INDEX events_search ON events USING GIN (search);
-- Listing pages by (starts_at, id), overall and per venue or organizer.
CREATE INDEX events_by_start ON events (starts_at, id);
CREATE INDEX events_by_venue ON events (venue_id, starts_at, id);
CREATE INDEX events_by_organizer ON events (organizer_id, starts_at, id);
-- The sale scheduler's two questions: which sales start now, which end now.
CREATE INDEX events_sale_due_to_start ON events (sale_starts_at) WHERE status = 'published';
CREATE INDEX events_sale_due_to_end ON events (sale_ends_at) WHERE status IN ('published', 'on_sale');

CREATE TABLE categories (
    id          UUID        PRIMARY KEY,
    event_id    UUID        NOT NULL REFERENCES events ON DELETE CASCADE,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL,
    currency    TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    price_minor BIGINT      NOT NULL CHECK (price_minor >= 0),
    -- Set for general admission, NULL for seated categories.
    ga_capacity INTEGER     CHECK (ga_capacity >= 1),
    -- Forgetting the area (a draft's venue lost it on re-import) leaves plain GA.
    area_id     UUID        REFERENCES ga_areas ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (event_id, name),
    -- The target of category_seats' composite key, so a seat row always names its category's event.
    UNIQUE (id, event_id),
    CHECK (area_id IS NULL OR ga_capacity IS NOT NULL)
);

CREATE INDEX categories_by_area ON categories (area_id) WHERE area_id IS NOT NULL;

-- The primary key is the rule "a seat belongs to at most one category of an event".
CREATE TABLE category_seats (
    event_id    UUID NOT NULL,
    seat_id     UUID NOT NULL REFERENCES seats ON DELETE CASCADE,
    category_id UUID NOT NULL,
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (category_id, event_id) REFERENCES categories (id, event_id) ON DELETE CASCADE
);

CREATE INDEX category_seats_by_category ON category_seats (category_id);
CREATE INDEX category_seats_by_seat ON category_seats (seat_id);

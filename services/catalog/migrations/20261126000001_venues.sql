-- Venues and their seat maps. A seat map is sections → rows → seats plus
-- general-admission areas. Ids are stable across re-imports because every
-- import upserts on the natural keys below (section name, row name within
-- its section, seat number within its row, area name); `revision` marks the
-- rows the latest import touched, and the import deletes the rest.
-- `ordinal` is the position in the imported seat map across the whole venue
-- (best-available order); a seat's `position` is its place within its row.
CREATE TABLE venues (
    id                UUID        PRIMARY KEY,
    organizer_id      UUID        NOT NULL,
    name              TEXT        NOT NULL,
    address           TEXT        NOT NULL,
    city              TEXT        NOT NULL,
    country_code      TEXT        NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    time_zone         TEXT        NOT NULL,
    seat_map_revision BIGINT      NOT NULL DEFAULT 0 CHECK (seat_map_revision >= 0),
    seat_count        INTEGER     NOT NULL DEFAULT 0 CHECK (seat_count >= 0),
    ga_capacity       BIGINT      NOT NULL DEFAULT 0 CHECK (ga_capacity >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ListVenues pages by (name, id), optionally per organizer.
CREATE INDEX venues_by_name ON venues (name, id);
CREATE INDEX venues_by_organizer ON venues (organizer_id, name, id);

CREATE TABLE sections (
    id       UUID    PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id UUID    NOT NULL REFERENCES venues ON DELETE CASCADE,
    name     TEXT    NOT NULL,
    ordinal  INTEGER NOT NULL,
    revision BIGINT  NOT NULL,
    UNIQUE (venue_id, name)
);

CREATE TABLE seat_rows (
    id         UUID    PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id   UUID    NOT NULL REFERENCES venues ON DELETE CASCADE,
    section_id UUID    NOT NULL REFERENCES sections ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    ordinal    INTEGER NOT NULL,
    revision   BIGINT  NOT NULL,
    UNIQUE (section_id, name)
);

CREATE INDEX seat_rows_by_venue ON seat_rows (venue_id, ordinal);

CREATE TABLE seats (
    id         UUID    PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id   UUID    NOT NULL REFERENCES venues ON DELETE CASCADE,
    row_id     UUID    NOT NULL REFERENCES seat_rows ON DELETE CASCADE,
    number     TEXT    NOT NULL,
    label      TEXT    NOT NULL,
    accessible BOOLEAN NOT NULL,
    position   INTEGER NOT NULL CHECK (position >= 1),
    ordinal    INTEGER NOT NULL,
    revision   BIGINT  NOT NULL,
    UNIQUE (row_id, number)
);

CREATE INDEX seats_by_venue ON seats (venue_id, ordinal);

CREATE TABLE ga_areas (
    id       UUID    PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id UUID    NOT NULL REFERENCES venues ON DELETE CASCADE,
    name     TEXT    NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 1),
    ordinal  INTEGER NOT NULL,
    revision BIGINT  NOT NULL,
    UNIQUE (venue_id, name)
);

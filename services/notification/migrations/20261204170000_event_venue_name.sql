-- The venue's name, which printed tickets show (catalog's EventPublished/EventUpdated
-- carry it from now on; events published before read as empty until their next update).
ALTER TABLE events ADD COLUMN venue_name TEXT NOT NULL DEFAULT '';

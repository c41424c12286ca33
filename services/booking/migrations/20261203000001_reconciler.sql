-- The saga's second line. `reconcile_at` is when booking's reconciler next looks at a
-- booking that waits on another service's event (a payment, a late payment, a restock, a
-- refund); NULL when it waits on nothing. `restock_due` records that a cancellation asked
-- for the seats back and inventory has not confirmed it yet.
ALTER TABLE bookings
    ADD COLUMN reconcile_at TIMESTAMPTZ,
    ADD COLUMN restock_due  BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX bookings_to_reconcile ON bookings (reconcile_at) WHERE reconcile_at IS NOT NULL;

-- Bookings written before: look once at those that may still wait on something.
UPDATE bookings SET reconcile_at = now()
WHERE status IN ('pending_payment', 'refund_pending')
   OR (status IN ('cancelled', 'expired') AND updated_at > now() - interval '1 day');

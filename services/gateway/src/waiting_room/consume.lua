-- Marks a pass used until it expires.
--
-- KEYS: 1 the pass's `used` marker.
-- ARGV: 1 marker of this use (the idempotency key, `-` without one), 2 expiry (unix ms).
-- Returns 1 if now used, 2 for a replay of the use with the same idempotency key, 0 if used
-- before, which `queue::Consumed` reads.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then
  return 1
end
if ARGV[1] ~= '-' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return 2
end
return 0

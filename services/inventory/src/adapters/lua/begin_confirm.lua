-- First step of Confirm: checks the fencing token and that the hold is live, then
-- parks it in 'confirming' so expiry cannot end it while the ledger is written.
-- The expiry index keeps it, a grace period later, so a crash mid-confirm is
-- finished (or undone) by the reaper. A confirm is for a booking, so the hold
-- counts as claimed (claim.lua): if it is undone, its end is announced.
--
-- KEYS[1]  the event's key base
-- ARGV     hold_id, fencing_token, now_ms, grace_ms
-- Returns  {'OK', status, user, exp, ga, seats, seatcats, qty, created, booking}
--          {'ERR', code}: NO_HOLD, STALE_TOKEN, EXPIRED, ENDED:<status>
local b = KEYS[1]
local hold, token, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local hold_key = b .. ':hold:' .. hold
local h = redis.call('HMGET', hold_key, 'status', 'user', 'exp', 'ga', 'seats', 'seatcats', 'qty', 'token', 'created', 'booking')
if not h[1] then return {'ERR', 'NO_HOLD'} end
if h[8] ~= token then return {'ERR', 'STALE_TOKEN'} end
local status = h[1]
if status == 'active' then
  if tonumber(h[3]) <= now then return {'ERR', 'EXPIRED'} end
  redis.call('HSET', hold_key, 'status', 'confirming', 'claimed', '1')
  redis.call('ZADD', b .. ':expiry', tonumber(h[3]) + grace, hold)
  status = 'confirming'
elseif status ~= 'confirming' and status ~= 'confirmed' then
  return {'ERR', 'ENDED:' .. status}
end
return {'OK', status, h[2], h[3], h[4], h[5], h[6], h[7], h[9], h[10] or ''}

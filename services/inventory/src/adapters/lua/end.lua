-- Ends an active hold (release or expiry) and returns its tickets to stock.
-- Idempotent: a hold that already ended is left alone. Only the end of a hold
-- claimed for a booking (claim.lua) is spooled for announcement: the booking
-- saga is the one consumer of HoldReleased / HoldExpired (ADR 0021).
-- The ended record then expires (retain.lua); a spooled one is kept until unspool.lua
-- has announced it.
--
-- KEYS[1]  the event's key base
-- ARGV     hold_id, now_ms, outcome ('released' | 'expired'), force (1: also end a
--          hold stuck in 'confirming', after the caller checked the ledger has no sale),
--          who ended it (user id, or '' for expiry), retention_ms
-- Returns  {'OK', outcome} | {'NOOP', current status} | {'CHECK'} (confirming, not forced)
--          | {'ERR', 'NO_HOLD'}
local b = KEYS[1]
local hold, now, outcome, force, by, retention =
  ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local hold_key = b .. ':hold:' .. hold
local h = redis.call('HMGET', hold_key, 'status', 'user', 'exp', 'ga', 'seats', 'seatcats', 'qty', 'claimed',
  'idem_exp')
if not h[1] then return {'ERR', 'NO_HOLD'} end
local status = h[1]
if status == 'confirming' and not force then return {'CHECK'} end
if status ~= 'active' and status ~= 'confirming' then return {'NOOP', status} end
if outcome == 'expired' and status == 'active' and tonumber(h[3]) > now then return {'NOOP', status} end

if h[4] ~= '' then
  local cat, q = string.match(h[4], '^(.+):(%d+)$')
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'avail', tonumber(q))
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'held', -tonumber(q))
end
if h[5] ~= '' then
  local cats = {}
  for cat in string.gmatch(h[6], '[^,]+') do cats[#cats + 1] = cat end
  local i = 0
  for seat in string.gmatch(h[5], '[^,]+') do
    i = i + 1
    local v = redis.call('HGET', b .. ':seatinfo', seat)
    local rank = tonumber(string.match(v, '|([^|]+)$'))
    redis.call('ZADD', b .. ':free:' .. cats[i], rank, seat)
    redis.call('HDEL', b .. ':seat', seat)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'avail', 1)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'held', -1)
  end
end
redis.call('DECRBY', b .. ':user:' .. h[2], tonumber(h[7]))
redis.call('HSET', hold_key, 'status', outcome, 'ended', now, 'by', by)
redis.call('ZREM', b .. ':expiry', hold)
if h[8] then
  redis.call('RPUSH', b .. ':spool', outcome .. ':' .. hold)
else
  retain(hold_key, now, retention, h[9])
end
return {'OK', outcome}

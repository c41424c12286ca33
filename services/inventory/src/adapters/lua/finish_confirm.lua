-- Last step of Confirm, after the ledger committed the sale: held becomes sold.
-- Idempotent.
--
-- KEYS[1]  the event's key base
-- ARGV     hold_id, booking_id, now_ms
-- Returns  {'OK'} | {'ERR', 'NO_HOLD'} | {'ERR', 'ENDED:<status>'}
local b = KEYS[1]
local hold, booking, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local hold_key = b .. ':hold:' .. hold
local h = redis.call('HMGET', hold_key, 'status', 'ga', 'seats', 'seatcats')
if not h[1] then return {'ERR', 'NO_HOLD'} end
if h[1] == 'confirmed' then return {'OK'} end
if h[1] ~= 'confirming' and h[1] ~= 'active' then return {'ERR', 'ENDED:' .. h[1]} end
if h[2] ~= '' then
  local cat, q = string.match(h[2], '^(.+):(%d+)$')
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'held', -tonumber(q))
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'sold', tonumber(q))
end
if h[3] ~= '' then
  local cats = {}
  for cat in string.gmatch(h[4], '[^,]+') do cats[#cats + 1] = cat end
  local i = 0
  for seat in string.gmatch(h[3], '[^,]+') do
    i = i + 1
    redis.call('HSET', b .. ':seat', seat, 'S:' .. hold)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'held', -1)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'sold', 1)
  end
end
redis.call('HSET', hold_key, 'status', 'confirmed', 'booking', booking, 'ended', now)
redis.call('ZREM', b .. ':expiry', hold)
return {'OK'}

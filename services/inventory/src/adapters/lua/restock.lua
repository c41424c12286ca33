-- Returns a confirmed hold's tickets to stock after the ledger recorded the refund.
-- Idempotent.
--
-- KEYS[1]  the event's key base
-- ARGV     hold_id, now_ms
-- Returns  {'OK'} | {'ERR', 'NO_HOLD'} | {'ERR', 'ENDED:<status>'}
local b = KEYS[1]
local hold, now = ARGV[1], tonumber(ARGV[2])
local hold_key = b .. ':hold:' .. hold
local h = redis.call('HMGET', hold_key, 'status', 'user', 'ga', 'seats', 'seatcats', 'qty')
if not h[1] then return {'ERR', 'NO_HOLD'} end
if h[1] == 'restocked' then return {'OK'} end
if h[1] ~= 'confirmed' then return {'ERR', 'ENDED:' .. h[1]} end
if h[3] ~= '' then
  local cat, q = string.match(h[3], '^(.+):(%d+)$')
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'sold', -tonumber(q))
  redis.call('HINCRBY', b .. ':cat:' .. cat, 'avail', tonumber(q))
end
if h[4] ~= '' then
  local cats = {}
  for cat in string.gmatch(h[5], '[^,]+') do cats[#cats + 1] = cat end
  local i = 0
  for seat in string.gmatch(h[4], '[^,]+') do
    i = i + 1
    local v = redis.call('HGET', b .. ':seatinfo', seat)
    redis.call('ZADD', b .. ':free:' .. cats[i], tonumber(string.match(v, '|([^|]+)$')), seat)
    redis.call('HDEL', b .. ':seat', seat)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'sold', -1)
    redis.call('HINCRBY', b .. ':cat:' .. cats[i], 'avail', 1)
  end
end
redis.call('DECRBY', b .. ':user:' .. h[2], tonumber(h[6]))
redis.call('HSET', hold_key, 'status', 'restocked', 'ended', now)
return {'OK'}

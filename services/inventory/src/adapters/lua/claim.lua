-- Claims a live hold for a booking: its end will be announced (end.lua spools
-- only claimed holds). Atomic with end.lua, so either the claim comes first and
-- the end is announced, or the hold had ended and the caller sees it ended.
--
-- KEYS[1]  the hold's key
-- Returns  nothing
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'active' or status == 'confirming' then
  redis.call('HSET', KEYS[1], 'claimed', '1')
end

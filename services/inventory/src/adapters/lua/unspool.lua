-- Removes announcements that are safely in the outbox, and lets their holds' records
-- expire as end.lua lets an unannounced hold's (retain.lua).
--
-- KEYS[1]  the event's key base
-- ARGV     now_ms, retention_ms, then the entries ('<outcome>:<hold>')
-- Returns  nothing
local b = KEYS[1]
local now, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV do
  redis.call('LREM', b .. ':spool', 1, ARGV[i])
  local hold_key = b .. ':hold:' .. string.match(ARGV[i], ':(.*)$')
  retain(hold_key, now, retention, redis.call('HGET', hold_key, 'idem_exp'))
end

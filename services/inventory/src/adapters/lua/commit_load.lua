-- Puts an event's staged stock in place (see `Stock::load`), only if the caller still
-- owns the rebuild lock and the event is not loaded: a load that outlived its lock, or
-- lost a race with another, writes nothing, so it can never wipe holds placed since.
-- Scripts need the event's meta, so none ran on the event while it was not loaded.
--
-- KEYS[1]  the event's key base
-- KEYS[2]  the staging base ('<base>:load:<token>')
-- KEYS[3]  the set of loaded events (the reaper's list)
-- ARGV     lock token, event id, n, n leftover keys to drop, then the staged suffixes
--          (e.g. ':cats')
-- Returns  'OK' | 'LOST' (the lock is not the caller's) | 'LOADED' (already loaded)
local b, stage, events, token, event, n = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3])
local lock = b .. ':rebuilding'
local function drop_stage()
  for i = n + 4, #ARGV do redis.call('UNLINK', stage .. ARGV[i]) end
end
if redis.call('GET', lock) ~= token then
  drop_stage()
  return 'LOST'
end
redis.call('DEL', lock)
if redis.call('EXISTS', b .. ':meta') == 1 then
  drop_stage()
  return 'LOADED'
end
for i = 4, n + 3 do redis.call('UNLINK', ARGV[i]) end
for i = n + 4, #ARGV do
  -- A suffix staged with nothing in it (no seats sold, say) is no key. Staged keys
  -- expire in case their loader dies; live ones must not.
  if redis.call('EXISTS', stage .. ARGV[i]) == 1 then
    redis.call('RENAME', stage .. ARGV[i], b .. ARGV[i])
    redis.call('PERSIST', b .. ARGV[i])
  end
end
redis.call('SADD', events, event)
return 'OK'

-- Lets an ended hold's record expire after the retention from `now`, or with its
-- idempotency key if that lives longer, so a replay of the key still finds its hold.
-- Prepended to end.lua and unspool.lua, the two places a record's last state is written.
local function retain(hold_key, now, retention, idem_exp)
  redis.call('PEXPIREAT', hold_key, math.max(now + retention, tonumber(idem_exp or '0')))
end

-- Joins the queue or looks a ticket up, shuffling the early joiners first if the sale has
-- opened and nobody did yet; hands out the pass expiry of an admitted ticket the first time.
--
-- KEYS: 1 tickets (user -> ticket), 2 owners (ticket -> user), 3 early (set of tickets that
-- joined before opening), 4 positions (ticket -> position), 5 last (the last position given;
-- exists once the queue opened), 6 passes (ticket -> pass expiry, unix seconds), 7 joined
-- (ticket -> when it joined, unix ms).
-- ARGV: 1 user, 2 `join` or `look`, 3 ticket (a new one to join with, or the one to look up),
-- 4 `1` once the sale opened, 5 shuffle seed, 6 expire-at (unix ms), 7 positions admitted now,
-- 8 the pass expiry to hand out now, 9 now (unix ms).
-- Returns {ticket, owner ('' if unknown), position (0 before opening), created, pass expiry or 0,
-- admitted now: 0 if not, else when the ticket joined (unix ms; -1 if unknown)}, which
-- `queue::Visited` reads.
local changed = false
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  -- Fisher-Yates with j drawn from 52 bits of SHA-1(seed:i): every order of the early set is
  -- equally likely and unpredictable without the seed; the `last` key makes it happen once.
  local early = redis.call('SMEMBERS', KEYS[3])
  for i = #early, 2, -1 do
    local r = tonumber(string.sub(redis.sha1hex(ARGV[5] .. ':' .. i), 1, 13), 16) / 4503599627370496
    local j = math.min(math.floor(r * i) + 1, i)
    early[i], early[j] = early[j], early[i]
  end
  for i, ticket in ipairs(early) do
    redis.call('HSET', KEYS[4], ticket, i)
  end
  redis.call('SET', KEYS[5], #early)
  redis.call('DEL', KEYS[3])
  changed = true
end
local ticket, owner, created = ARGV[3], ARGV[1], 0
if ARGV[2] == 'join' then
  local existing = redis.call('HGET', KEYS[1], owner)
  if existing then
    ticket = existing
  else
    created, changed = 1, true
    redis.call('HSET', KEYS[1], owner, ticket)
    redis.call('HSET', KEYS[2], ticket, owner)
    redis.call('HSET', KEYS[7], ticket, ARGV[9])
    if redis.call('EXISTS', KEYS[5]) == 1 then
      redis.call('HSET', KEYS[4], ticket, redis.call('INCR', KEYS[5]))
    else
      redis.call('SADD', KEYS[3], ticket)
    end
  end
else
  owner = redis.call('HGET', KEYS[2], ticket) or ''
end
local position = tonumber(redis.call('HGET', KEYS[4], ticket) or 0)
local pass, admitted = 0, 0
if owner == ARGV[1] and position > 0 and position <= tonumber(ARGV[7]) then
  if redis.call('HSETNX', KEYS[6], ticket, ARGV[8]) == 1 then
    changed = true
    admitted = tonumber(redis.call('HGET', KEYS[7], ticket) or -1)
  end
  pass = tonumber(redis.call('HGET', KEYS[6], ticket))
end
if changed then
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIREAT', key, ARGV[6])
  end
end
return {ticket, owner, position, created, pass, admitted}

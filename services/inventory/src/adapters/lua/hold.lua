-- Places a batch of holds on one event, one after the other, each all or nothing:
-- sale window, per-user limit, availability, then the writes. Concurrent requests
-- are coalesced into one call (see `adapters/coalesce.rs`), so the per-call cost of
-- EVALSHA and the event's metadata read are paid once per batch. All keys share the
-- event's hash tag, so the script touches one slot.
--
-- KEYS[1]  the event's key base, "<prefix>{evt:<event>}"
-- ARGV     now_ms, ttl_ms, idem_ttl_ms, then per hold:
--            hold_id, user_id, idem_key ('' for none), fingerprint, mode, n, then n mode arguments:
--              ga    category, quantity
--              seats seat ids...
--              best  category, quantity, require_adjacent (0/1)
-- Returns  one reply per hold, in order:
--          {'OK', hold_id, fencing_token, expires_at_ms, ga ('cat:qty' or ''), seat ids (comma-separated), seat categories}
--          {'DUP', hold_id} for a replay of the same idempotency key
--          {'ERR', code, detail}
local b = KEYS[1]
local now, ttl, idem_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expires = now + ttl

local meta = redis.call('HMGET', b .. ':meta', 'state', 'sale_start', 'sale_end', 'limit')
local on_sale = (meta[1] == 'published' or meta[1] == 'on_sale') and now >= tonumber(meta[2])
  and now < tonumber(meta[3])
local limit = tonumber(meta[4])

-- Counters are read once per batch, kept here as holds are placed, and written once
-- at the end: most of a batch's holds share a category, and this is where the
-- per-hold cost goes.
local cats, cat_order = {}, {}
local function category(cat)
  local c = cats[cat]
  if c == nil then
    local v = redis.call('HMGET', b .. ':cat:' .. cat, 'kind', 'avail')
    c = v[1] and {kind = v[1], avail = tonumber(v[2]), taken = 0} or false
    cats[cat] = c
    if c then cat_order[#cat_order + 1] = cat end
  end
  return c
end
local function take(c, q)
  c.avail, c.taken = c.avail - q, c.taken + q
end

local owned, user_order = {}, {}
local function owned_by(user)
  local o = owned[user]
  if o == nil then
    o = {count = tonumber(redis.call('GET', b .. ':user:' .. user) or '0'), added = 0}
    owned[user] = o
    user_order[#user_order + 1] = user
  end
  return o
end

local fence = tonumber(redis.call('GET', b .. ':fence') or '0')
local first_fence, expiry = fence, {}

local function info(seat)
  local v = redis.call('HGET', b .. ':seatinfo', seat)
  if not v then return nil end
  local cat, row, pos = string.match(v, '^([^|]+)|([^|]*)|([^|]+)|')
  return cat, row, tonumber(pos)
end

-- One hold; `first` is the index of its first mode argument in ARGV, `n` their count.
local function place(hold, user, idem, fp, mode, first, n)
  local idem_key = b .. ':idem:' .. user .. ':' .. idem
  if idem ~= '' then
    local prior = redis.call('GET', idem_key)
    if prior then
      local sep = string.find(prior, '|', 1, true)
      if string.sub(prior, sep + 1) ~= fp then return {'ERR', 'IDEMPOTENCY_MISMATCH', ''} end
      return {'DUP', string.sub(prior, 1, sep - 1)}
    end
  end
  if not on_sale then return {'ERR', 'NOT_ON_SALE', meta[1]} end

  local o = owned_by(user)
  local ga, seats, seat_cats, quantity = '', {}, {}, 0

  if mode == 'ga' then
    local cat, q = ARGV[first], tonumber(ARGV[first + 1])
    local c = category(cat)
    if not c then return {'ERR', 'UNKNOWN_CATEGORY', cat} end
    if c.kind ~= 'ga' then return {'ERR', 'NOT_GENERAL_ADMISSION', cat} end
    if o.count + q > limit then return {'ERR', 'LIMIT', tostring(limit - o.count)} end
    if c.avail < q then return {'ERR', 'SOLD_OUT', tostring(c.avail)} end
    take(c, q)
    ga, quantity = cat .. ':' .. q, q
  else
    local cat_of = {}
    if mode == 'seats' then
      for i = first, first + n - 1 do seats[#seats + 1] = ARGV[i] end
      if o.count + #seats > limit then return {'ERR', 'LIMIT', tostring(limit - o.count)} end
      for _, seat in ipairs(seats) do
        local cat = info(seat)
        if not cat then return {'ERR', 'UNKNOWN_SEAT', seat} end
        if not redis.call('ZSCORE', b .. ':free:' .. cat, seat) then return {'ERR', 'SEAT_TAKEN', seat} end
        cat_of[seat] = cat
      end
    else -- best available
      local cat, q, adjacent = ARGV[first], tonumber(ARGV[first + 1]), ARGV[first + 2] == '1'
      local c = category(cat)
      if not c then return {'ERR', 'UNKNOWN_CATEGORY', cat} end
      if c.kind ~= 'seated' then return {'ERR', 'NOT_SEATED', cat} end
      if o.count + q > limit then return {'ERR', 'LIMIT', tostring(limit - o.count)} end
      if c.avail < q then return {'ERR', 'SOLD_OUT', tostring(c.avail)} end
      local free = b .. ':free:' .. cat
      -- Walk free seats best-first looking for q in a row with consecutive positions.
      local run, last_row, last_pos, offset = {}, nil, nil, 0
      while #seats == 0 do
        local chunk = redis.call('ZRANGE', free, offset, offset + 255)
        if #chunk == 0 then break end
        for _, seat in ipairs(chunk) do
          local _, row, pos = info(seat)
          if row == last_row and pos == last_pos + 1 then run[#run + 1] = seat else run = {seat} end
          last_row, last_pos = row, pos
          if #run == q then seats = run break end
        end
        offset = offset + 256
      end
      if #seats == 0 then
        if adjacent then return {'ERR', 'NO_ADJACENT', tostring(q)} end
        seats = redis.call('ZRANGE', free, 0, q - 1)
      end
      for _, seat in ipairs(seats) do cat_of[seat] = cat end
    end
    for _, seat in ipairs(seats) do
      local cat = cat_of[seat]
      redis.call('ZREM', b .. ':free:' .. cat, seat)
      redis.call('HSET', b .. ':seat', seat, 'H:' .. hold)
      take(category(cat), 1)
      seat_cats[#seat_cats + 1] = cat
    end
    quantity = #seats
  end

  fence = fence + 1
  local seat_list, cat_list = table.concat(seats, ','), table.concat(seat_cats, ',')
  local record = {'user', user, 'status', 'active', 'exp', expires, 'token', fence, 'created', now, 'ga', ga,
    'seats', seat_list, 'seatcats', cat_list, 'qty', quantity}
  if idem ~= '' then
    redis.call('SET', idem_key, hold .. '|' .. fp, 'PX', idem_ttl)
    -- A replay of the key reads this record: once ended, it is kept as long as the key.
    record[#record + 1] = 'idem_exp'
    record[#record + 1] = now + idem_ttl
  end
  redis.call('HSET', b .. ':hold:' .. hold, unpack(record))
  expiry[#expiry + 1] = expires
  expiry[#expiry + 1] = hold
  o.count, o.added = o.count + quantity, o.added + quantity
  return {'OK', hold, fence, expires, ga, seat_list, cat_list}
end

local replies, i = {}, 4
while i <= #ARGV do
  local n = tonumber(ARGV[i + 5])
  if not meta[1] then
    replies[#replies + 1] = {'ERR', 'NOSTOCK', ''}
  else
    replies[#replies + 1] = place(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], i + 6, n)
  end
  i = i + 6 + n
end

-- The batch's counter changes, once each.
for _, cat in ipairs(cat_order) do
  local c = cats[cat]
  if c.taken > 0 then
    redis.call('HINCRBY', b .. ':cat:' .. cat, 'avail', -c.taken)
    redis.call('HINCRBY', b .. ':cat:' .. cat, 'held', c.taken)
  end
end
for _, user in ipairs(user_order) do
  if owned[user].added > 0 then redis.call('INCRBY', b .. ':user:' .. user, owned[user].added) end
end
if fence > first_fence then redis.call('SET', b .. ':fence', fence) end
if #expiry > 0 then redis.call('ZADD', b .. ':expiry', unpack(expiry)) end
return replies

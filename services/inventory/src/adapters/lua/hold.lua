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

local meta = redis.call('HMGET', b .. ':meta', 'state', 'sale_start', 'sale_end', 'limit')
local on_sale = (meta[1] == 'published' or meta[1] == 'on_sale') and now >= tonumber(meta[2])
  and now < tonumber(meta[3])
local limit = tonumber(meta[4])

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

  local user_key = b .. ':user:' .. user
  local owned = tonumber(redis.call('GET', user_key) or '0')
  local ga, seats, seat_cats, quantity = '', {}, {}, 0

  if mode == 'ga' then
    local cat, q = ARGV[first], tonumber(ARGV[first + 1])
    local cat_key = b .. ':cat:' .. cat
    local c = redis.call('HMGET', cat_key, 'kind', 'avail')
    if not c[1] then return {'ERR', 'UNKNOWN_CATEGORY', cat} end
    if c[1] ~= 'ga' then return {'ERR', 'NOT_GENERAL_ADMISSION', cat} end
    if owned + q > limit then return {'ERR', 'LIMIT', tostring(limit - owned)} end
    if tonumber(c[2]) < q then return {'ERR', 'SOLD_OUT', c[2]} end
    redis.call('HINCRBY', cat_key, 'avail', -q)
    redis.call('HINCRBY', cat_key, 'held', q)
    ga, quantity = cat .. ':' .. q, q
  else
    local cat_of = {}
    if mode == 'seats' then
      for i = first, first + n - 1 do seats[#seats + 1] = ARGV[i] end
      if owned + #seats > limit then return {'ERR', 'LIMIT', tostring(limit - owned)} end
      for _, seat in ipairs(seats) do
        local cat = info(seat)
        if not cat then return {'ERR', 'UNKNOWN_SEAT', seat} end
        if not redis.call('ZSCORE', b .. ':free:' .. cat, seat) then return {'ERR', 'SEAT_TAKEN', seat} end
        cat_of[seat] = cat
      end
    else -- best available
      local cat, q, adjacent = ARGV[first], tonumber(ARGV[first + 1]), ARGV[first + 2] == '1'
      local c = redis.call('HMGET', b .. ':cat:' .. cat, 'kind', 'avail')
      if not c[1] then return {'ERR', 'UNKNOWN_CATEGORY', cat} end
      if c[1] ~= 'seated' then return {'ERR', 'NOT_SEATED', cat} end
      if owned + q > limit then return {'ERR', 'LIMIT', tostring(limit - owned)} end
      if tonumber(c[2]) < q then return {'ERR', 'SOLD_OUT', c[2]} end
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
      redis.call('HINCRBY', b .. ':cat:' .. cat, 'avail', -1)
      redis.call('HINCRBY', b .. ':cat:' .. cat, 'held', 1)
      seat_cats[#seat_cats + 1] = cat
    end
    quantity = #seats
  end

  local token = redis.call('INCR', b .. ':fence')
  local expires = now + ttl
  local seat_list, cat_list = table.concat(seats, ','), table.concat(seat_cats, ',')
  redis.call('HSET', b .. ':hold:' .. hold, 'user', user, 'status', 'active', 'exp', expires, 'token', token,
    'created', now, 'ga', ga, 'seats', seat_list, 'seatcats', cat_list, 'qty', quantity)
  redis.call('ZADD', b .. ':expiry', expires, hold)
  redis.call('INCRBY', user_key, quantity)
  if idem ~= '' then redis.call('SET', idem_key, hold .. '|' .. fp, 'PX', idem_ttl) end
  return {'OK', hold, token, expires, ga, seat_list, cat_list}
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
return replies

-- GCRA in one atomic step, shared by every replica.
-- KEYS[1]  the bucket key
-- ARGV[1]  emission interval in microseconds (period / limit)
-- ARGV[2]  limit (burst size)
-- Returns {allowed (0|1), remaining, reset_after_us, retry_after_us}.
--
-- The clock is the Redis server's (TIME), so replicas with skewed clocks still agree.
-- Scripts are replicated by effects (Redis >= 5 default, 7 only), which is what makes TIME
-- before a write legal here.
local emission = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = emission * limit

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- The stored value is the theoretical arrival time (TAT); absent means a fresh bucket.
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end

local new_tat = tat + emission
local allow_at = new_tat - period
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end

-- The key expires exactly when the bucket is full again (at most one period away): past that
-- point a missing key and a stored one mean the same, so nothing is kept longer than needed.
-- %d keeps all digits (tostring would print a 16-digit microsecond time in exponent form).
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, math.floor((period - (new_tat - now)) / emission), new_tat - now, 0}

-- wrk script for bench_arena_votes.py.
-- Arguments after "--": MODE PREFIX COUNT
--   MODE healthz: GET /healthz (the ceiling)
--   MODE battle:  GET /api/battles/<PREFIX><n> (loads each battle into the service's cache)
--   MODE vote:    POST /api/battles/<PREFIX><n>/vote, outcomes in turn
-- Battle ids are PREFIX followed by n in 7 digits, n = 0 .. COUNT (COUNT + 1 ids:
-- wrk calls request() once before the run to check the script, which uses one). Once COUNT
-- responses came back the thread stops and creates the file named by $WRK_DONE_FILE:
-- wrk itself sleeps out its -d, so the caller interrupts it (SIGINT) on seeing the
-- file. Prints one line:
-- RESULT {"requests": .., "seconds": .., "p50_ms": .., "p99_ms": .., "statuses": {..}, ...}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local mode, prefix, count
local sent, received = 0, 0
statuses = {}
local winners = { "model_a", "model_b", "tie", "tie (bothbad)" }
local healthz

function init(args)
  mode, prefix, count = args[1], args[2], tonumber(args[3])
  healthz = wrk.format("GET", "/healthz")
end

function delay()
  -- Once every id went out, a connection waits (an hour) instead of sending more.
  if count and sent > count then
    return 3600000
  end
  return 0
end

function request()
  if mode == "healthz" then
    return healthz
  end
  local n = sent
  sent = sent + 1
  local path = string.format("/api/battles/%s%07d", prefix, n)
  if mode == "battle" then
    return wrk.format("GET", path)
  end
  local body = '{"winner": "' .. winners[(n % 4) + 1] .. '"}'
  return wrk.format("POST", path .. "/vote", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  received = received + 1
  if count and received == count then
    wrk.thread:stop()
    local marker = os.getenv("WRK_DONE_FILE")
    if marker then
      io.open(marker, "w"):close()
    end
  end
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, '
      .. '"max_ms": %.3f, "statuses": {%s}, "socket_errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.timeout))
end

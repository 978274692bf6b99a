-- wrk script for scripts/bench.sh: with WRK_METHOD, GET or PUT /hello/<user> over WRK_USERS
-- users in turn; without, wrk's own request for the URL. Names match examples/loadgen.rs (`load`
-- + base-26 letters), so `loadgen count` can seed them. At the end, one line of wrk's figures.
local method = os.getenv("WRK_METHOD") or ""
local users = tonumber(os.getenv("WRK_USERS") or "1000")
local body = '{"dateOfBirth":"1990-01-15"}'
local headers = { ["Content-Type"] = "application/json" }

local function name(i)
  local letters = {}
  repeat
    letters[#letters + 1] = string.char(97 + i % 26)
    i = math.floor(i / 26)
  until i == 0
  return "load" .. table.concat(letters)
end

local paths = {}
for i = 0, users - 1 do paths[i] = "/hello/" .. name(i) end

local counter = 0
function init(args)
  -- Each wrk thread starts at a different user.
  counter = math.random(0, users - 1)
end

if method ~= "" then -- wrk sends its prepared request (no Lua per request) when there is none
  function request()
    counter = (counter + 1) % users
    if method == "PUT" then
      return wrk.format("PUT", paths[counter], headers, body)
    end
    return wrk.format("GET", paths[counter])
  end
end

-- "req/s p50_ms p99_ms non-2xx socket_errors requests": errors.status counts the answers over
-- 399 (wrk's "Non-2xx or 3xx responses"), the others are its "Socket errors".
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%.0f %.2f %.2f %d %d %d\n", summary.requests / summary.duration * 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout, summary.requests))
end

-- wrk script for scripts/bench.sh: GET or PUT /hello/<user> over WRK_USERS users in turn.
-- Names match examples/loadgen.rs (`load` + base-26 letters), so `loadgen count` can seed them.
local method = os.getenv("WRK_METHOD") or "GET"
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

function request()
  counter = (counter + 1) % users
  if method == "PUT" then
    return wrk.format("PUT", paths[counter], headers, body)
  end
  return wrk.format("GET", paths[counter])
end

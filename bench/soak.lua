-- wrk script for bench/soak.sh: replays the request mix of soak_requests.py and counts
-- responses by status; a 5xx without an `eval_*` error code (or the 503 of load shedding,
-- `server_overloaded`) is undesigned. (Answers are
-- compared with the reference run by soak_requests.py's checker, which knows which request
-- each answer belongs to.)
local data = dofile(os.getenv("SOAK_DATA"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  undesigned = 0
  n = math.random(1, #data)
end

function request()
  n = n % #data + 1
  local r = data[n]
  return wrk.format("POST", r.path, {["Content-Type"] = "application/json"}, r.body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 500 and not string.find(body, '"eval_', 1, true)
      and not string.find(body, '"server_overloaded"', 1, true) then
    undesigned = undesigned + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  local und = 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
    und = und + t:get("undesigned")
  end
  io.write(string.format("requests: %d, socket errors: %d\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for k, v in pairs(total) do io.write(string.format("status %d: %d\n", k, v)) end
  io.write(string.format("undesigned 5xx: %d\n", und))
end

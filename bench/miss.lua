-- wrk script: a distinct input on every request (all cache misses).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"input": {"user": {"id": "u%d-%d", "role": "developer"}, "action": "tool:invoke", "resource": {"server": "github", "tool": "create_issue"}, "parameters": {"title": "t%d"}, "context": {"timestamp": "2026-11-24T10:00:00Z"}}}', math.random(1, 1000000000), n, n)
  return wrk.format(nil, nil, nil, body)
end

-- wrk script: POST /v1/data/envoy/authz/allow with the input opa-envoy-plugin would build
-- for ext_authz_load's request (the same decision, so every request after the first is a
-- cache hit), for bench/ext_authz.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"input": {"attributes": {"request": {"http": {"method": "GET",
  "path": "/public/status?verbose=1", "host": "api.example.com", "protocol": "HTTP/1.1",
  "headers": {":method": "GET", ":path": "/public/status?verbose=1",
  ":authority": "api.example.com", "x-user-id": "alice", "user-agent": "ext-authz-load"}}}},
  "parsed_path": ["public", "status"], "parsed_query": {"verbose": ["1"]},
  "parsed_body": null, "truncated_body": false,
  "version": {"ext_authz": "v3", "encoding": "protojson"}}}]]

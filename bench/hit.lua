-- wrk script: the same gateway decision every time (all cache hits after the first).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": {"user": {"id": "dana", "role": "developer"}, "action": "tool:invoke", "resource": {"server": "github", "tool": "create_issue"}, "parameters": {"title": "Login fails"}, "context": {"timestamp": "2026-11-24T10:00:00Z"}}}'

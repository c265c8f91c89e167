package authzen.mcp_test

import data.authzen.mcp

alice := {"type": "user", "id": "alice@example.com", "properties": {"roles": ["developer"], "scopes": ["github:read", "github:write"]}}

caller(roles, scopes) := {"type": "user", "id": "someone@example.com", "properties": {"roles": roles, "scopes": scopes}}

server(name) := {"type": "mcp_server", "id": name}

call(subject, tool, server_name, arguments) := {
	"subject": subject,
	"action": {"name": tool},
	"resource": server(server_name),
	"context": {"arguments": arguments, "jsonrpc_id": 42},
}

decide(request) := d if {
	d := mcp.decision with input as request
}

permitted(request) if decide(request).decision == true

denied_because(request, reason) if {
	d := decide(request)
	d.decision == false
	contains(d.context.reason_admin.en, reason)
}

# The worked example of the header: alice's create_issue call.
test_worked_example_is_permitted if {
	decide({
		"subject": {"type": "user", "id": "alice@example.com", "properties": {"roles": ["developer"], "scopes": ["github:read", "github:write"]}},
		"action": {"name": "create_issue"},
		"resource": {"type": "mcp_server", "id": "github"},
		"context": {"arguments": {"repo": "acme/api", "title": "Flaky login test"}, "jsonrpc_id": 42},
	}) == {"decision": true}
}

test_a_high_sensitivity_tool_needs_a_cleared_role if {
	d := decide(call(alice, "merge_pull_request", "github", {"number": 7}))
	d.decision == false
	d.context.reason_admin.en == `no role cleared for high tools (roles: ["developer"])`
	d.context.reason_user.en == "You may not call merge_pull_request on github."
	permitted(call(caller(["maintainer"], ["github:write"]), "merge_pull_request", "github", {"number": 7}))
}

test_the_tools_scope_is_required if {
	denied_because(call(caller(["maintainer"], ["github:read"]), "create_issue", "github", {}), "missing scope github:write")
	denied_because(call(caller(["admin"], ["github:write"]), "delete_repository", "github", {}), "missing scope github:admin")
	permitted(call(caller(["admin"], ["github:admin"]), "delete_repository", "github", {}))
}

test_every_reason_is_given if {
	d := decide(call(caller(["viewer"], []), "create_issue", "github", {}))
	d.context.reason_admin.en == `missing scope github:write; no role cleared for medium tools (roles: ["viewer"])`
}

test_scopes_may_be_the_oauth_scope_string if {
	permitted(call(caller(["developer"], "github:read github:write"), "create_issue", "github", {}))
	permitted(call(caller("developer", "fs:read"), "read_file", "filesystem", {"path": "/srv/a"}))
}

test_no_roles_no_clearance if {
	denied_because(call({"type": "user", "id": "x", "properties": {"scopes": ["github:read"]}}, "search_code", "github", {}), "no role cleared for low tools")
	denied_because(call({"type": "user", "id": "x"}, "search_code", "github", {}), "missing scope github:read")
	denied_because(call(caller(["intern"], ["github:read"]), "search_code", "github", {}), "no role cleared")
}

test_arguments_are_checked if {
	writer := caller(["developer"], ["fs:write"])
	permitted(call(writer, "write_file", "filesystem", {"path": "/srv/data/out.txt", "content": "x"}))
	denied_because(call(writer, "write_file", "filesystem", {"path": "/etc/passwd", "content": "x"}), "argument path may not start with /etc/")
	denied_because(call(writer, "write_file", "filesystem", {"path": "/root/.ssh/authorized_keys"}), "argument path may not start with /root/")
}

test_unknown_servers_and_tools_are_denied if {
	denied_because(call(alice, "create_issue", "gitlab", {}), "unknown MCP server gitlab")
	denied_because(call(alice, "drop_database", "github", {}), "unknown tool drop_database on github")
	d := decide(object.union(call(alice, "create_issue", "github", {}), {"resource": {"type": "database"}}))
	d.decision == false
}

test_no_input_is_a_deny if {
	mcp.decision.decision == false
}

# --- tools/list as an Action Search ---------------------------------------------------------

# The server's Action Search: the candidates, then the decision for each (no arguments).
may_call(subject, server_name) := {c.name |
	listed := mcp.candidates with input as {"search": "action", "subject": subject, "resource": server(server_name), "context": {}}
	some c in listed
	permitted({"subject": subject, "action": c, "resource": server(server_name), "context": {}})
}

test_tools_list_is_filtered if {
	may_call(alice, "github") == {"create_issue", "search_code"}
	may_call(caller(["viewer"], ["github:read", "github:write"]), "github") == {"search_code"}
	may_call(caller(["admin"], ["github:read", "github:write", "github:admin"]), "github") == {"search_code", "create_issue", "merge_pull_request", "delete_repository"}
}

# A tool that refuses some arguments is still listed: the call decides.
test_tools_list_keeps_tools_with_argument_rules if {
	may_call(caller(["developer"], ["fs:read", "fs:write"]), "filesystem") == {"read_file", "write_file"}
}

test_unknown_server_lists_nothing if {
	count(may_call(alice, "gitlab")) == 0
	count(mcp.candidates) == 0 with input as {"search": "action", "subject": alice, "resource": {"type": "database", "id": "github"}, "context": {}}
	count(mcp.candidates) == 0 with input as {"search": "subject", "subject": {"type": "user"}, "action": {"name": "create_issue"}, "resource": server("github"), "context": {}}
}

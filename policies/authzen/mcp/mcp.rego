# MCP tool calls authorized through AuthZEN: the gateway turns each MCP JSON-RPC
# `tools/call` into an AuthZEN Access Evaluation request and asks `sark serve` (authzen
# entrypoint data.authzen.mcp.decision); a `tools/list` becomes an Action Search, so the
# list the agent sees holds only the tools it may call.
#
# The mapping:
#   subject   { type: "user", id: <the access token's sub>,
#               properties: { roles: <the token's roles>, scopes: <its scope claim, split> } }
#   action    { name: <params.name, the tool> }
#   resource  { type: "mcp_server", id: <the name of the MCP server behind the gateway> }
#   context   { arguments: <params.arguments>, jsonrpc_id: <the JSON-RPC id> }
#
# For example, with a token for sub "alice@example.com" carrying roles ["developer"] and
# scope "github:read github:write", this call to the gateway's `github` server
#
#   {"jsonrpc": "2.0", "id": 42, "method": "tools/call",
#    "params": {"name": "create_issue",
#               "arguments": {"repo": "acme/api", "title": "Flaky login test"}}}
#
# becomes this AuthZEN request (POST /access/v1/evaluation)
#
#   {"subject": {"type": "user", "id": "alice@example.com",
#                "properties": {"roles": ["developer"], "scopes": ["github:read", "github:write"]}},
#    "action": {"name": "create_issue"},
#    "resource": {"type": "mcp_server", "id": "github"},
#    "context": {"arguments": {"repo": "acme/api", "title": "Flaky login test"}, "jsonrpc_id": 42}}
#
# and the answer is {"decision": true}; for merge_pull_request (a high-sensitivity tool) it
# would be {"decision": false, "context": {"reason_admin": {...}, "reason_user": {...}}}, and
# the gateway answers the JSON-RPC call with an error that carries reason_user. Her
# `tools/list` on github is the Action Search {"subject": <as above>, "resource": <as above>},
# whose results are [{"name": "create_issue"}, {"name": "search_code"}].
#
# The policy (tools in data.json): a tool needs its scope among the subject's scopes, and a
# role cleared for its sensitivity (viewer: low, developer: medium, maintainer: high,
# admin: critical); a tool may also forbid argument values by prefix (write_file's path
# outside /etc/ and /root/). Arguments are only known to a call, so an Action Search
# (no arguments) lists a tool that a call may still refuse for its arguments.
package authzen.mcp

import data.authzen.mcp.role_clearance
import data.authzen.mcp.sensitivity_levels
import data.authzen.mcp.servers

# METADATA
# title: AuthZEN decision for an MCP tool call
# description: The decision object (decision and, on a deny, context.reason_admin with every reason and context.reason_user).
# entrypoint: true
decision := {"decision": true} if allow

decision := {
	"decision": false,
	"context": {
		"reason_admin": {"en": concat("; ", deny_reasons)},
		"reason_user": {"en": sprintf("You may not call %v on %v.", [tool_name, server_name])},
	},
} if not allow

# METADATA
# title: AuthZEN search candidates
# description: For an Action Search, the tools of the MCP server named by the resource.
# entrypoint: true
candidates contains {"name": name} if {
	input.search == "action"
	input.resource.type == "mcp_server"
	some name, _ in servers[input.resource.id].tools
}

default allow := false

allow if {
	tool
	count(deny_reasons) == 0
}

server := servers[input.resource.id] if input.resource.type == "mcp_server"

tool := server.tools[input.action.name]

# The names as the request gives them, for the reasons ("?" when missing).
default tool_name := "?"

tool_name := input.action.name

default server_name := "?"

server_name := input.resource.id

claims := object.get(object.get(input, "subject", {}), "properties", {})

# Roles and scopes as a list, or as one space-separated string (OAuth's `scope`).
granted(values) := {v | some v in values} if is_array(values)

granted(values) := {v | some v in split(values, " "); v != ""} if is_string(values)

default roles := []

roles := granted(object.get(claims, "roles", []))

default scopes := []

scopes := granted(object.get(claims, "scopes", []))

cleared_levels := {sensitivity_levels[role_clearance[role]] | some role in roles}

# The highest level a role of the subject is cleared for; -1 when none is.
default clearance := -1

clearance := max(cleared_levels) if count(cleared_levels) > 0

deny_reasons contains sprintf("unknown MCP server %v", [server_name]) if not server

deny_reasons contains sprintf("unknown tool %v on %v", [tool_name, server_name]) if {
	server
	not tool
}

deny_reasons contains sprintf("missing scope %v", [tool.scope]) if not tool.scope in scopes

deny_reasons contains sprintf("no role cleared for %v tools (roles: %v)", [tool.sensitivity, sort(roles)]) if {
	not clearance >= sensitivity_levels[tool.sensitivity]
}

deny_reasons contains sprintf("argument %v may not start with %v", [name, prefix]) if {
	some name, prefixes in object.get(tool, "forbidden_argument_prefixes", {})
	value := input.context.arguments[name]
	is_string(value)
	some prefix in prefixes
	startswith(value, prefix)
}

# MCP tool-invocation authorization for the SARK gateway.
#
# Input:
#   user:       { id, role: admin|developer|viewer|service, scopes: ["mcp:<server>:<operation>"] }
#   action:     "tool:invoke" | "tool:list"
#   resource:   { server, tool, sensitivity? }   (a declared sensitivity can only raise the level)
#   parameters: the tool-call arguments
#   context:    { timestamp: RFC 3339 (defaults to now) }
package mcp.gateway

import data.mcp.config
import data.mcp.roles
import data.mcp.sensitivity_levels
import data.mcp.servers
import data.mcp.tools

# METADATA
# title: Allow the tool call
# description: True only when the user may invoke the tool now.
# entrypoint: true
default allow := false

allow if {
	valid_request
	count(deny_reasons) == 0
}

valid_request if {
	input.action == "tool:list"
	role
	servers[input.resource.server]
}

valid_request if {
	input.action == "tool:invoke"
	role
	tool
}

# METADATA
# title: Gateway decision document
# description: allow, reasons, filtered_parameters and cache_ttl, as the gateway API returns them.
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"filtered_parameters": filtered_parameters,
	"cache_ttl": cache_ttl,
	"sensitivity": sensitivity,
}

role := roles[input.user.role]

tool := tools[input.resource.server][input.resource.tool]

operation := tool.operation

# The effective sensitivity is the highest of the server's, the tool's and the caller's label.
declared_levels contains sensitivity_levels[servers[input.resource.server].sensitivity]

declared_levels contains sensitivity_levels[tool.sensitivity]

declared_levels contains sensitivity_levels[input.resource.sensitivity]

# Unknown servers are treated as critical.
declared_levels contains 3 if not servers[input.resource.server]

sensitivity := name if {
	level := max(declared_levels)
	some name, l in sensitivity_levels
	l == level
}

deny_reasons contains "unsupported action" if not input.action in {"tool:invoke", "tool:list"}

deny_reasons contains sprintf("unknown role %q", [object.get(object.get(input, "user", {}), "role", "")]) if not role

deny_reasons contains "unknown tool" if {
	input.action == "tool:invoke"
	not tool
}

deny_reasons contains "unknown server" if not servers[input.resource.server]

deny_reasons contains sprintf("role %s may not use %s tools", [input.user.role, sensitivity]) if {
	sensitivity_levels[sensitivity] > sensitivity_levels[role.max_sensitivity]
}

deny_reasons contains sprintf("role %s may not perform %s operations", [input.user.role, operation]) if {
	input.action == "tool:invoke"
	not operation in role.operations
}

deny_reasons contains sprintf("missing scope mcp:%s:%s", [input.resource.server, operation]) if {
	role.requires_scope
	input.action == "tool:invoke"
	not sprintf("mcp:%s:%s", [input.resource.server, operation]) in object.get(input.user, "scopes", [])
}

deny_reasons contains "critical tools are only available during business hours" if {
	sensitivity == "critical"
	not within_business_hours
}

request_time_ns := time.parse_rfc3339_ns(input.context.timestamp)

request_time_ns := time.now_ns() if not input.context.timestamp

within_business_hours if {
	[hour, _, _] := time.clock(request_time_ns)
	hour >= config.business_hours.start_hour
	hour < config.business_hours.end_hour
	time.weekday(request_time_ns) in config.business_hours.weekdays
}

reasons := sort([r | some r in deny_reasons]) if count(deny_reasons) > 0

reasons := [sprintf("role %s may %s %s tools", [input.user.role, operation_label, sensitivity])] if count(deny_reasons) == 0

operation_label := object.get(tool, "operation", "list")

# Tool arguments with credentials removed before they reach the tool or the audit log.
filtered_parameters := {k: v |
	some k, v in object.get(input, "parameters", {})
	not sensitive_parameter(k)
}

sensitive_parameter(name) if lower(name) in config.sensitive_parameters

sensitive_parameter(name) if endswith(lower(name), "_token")

sensitive_parameter(name) if endswith(lower(name), "_secret")

sensitive_parameter(name) if endswith(lower(name), "_password")

# Decisions on more sensitive tools are cached for less time.
cache_ttl := config.cache_ttl_seconds[sensitivity]

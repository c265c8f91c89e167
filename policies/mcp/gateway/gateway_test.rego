package mcp.gateway_test

import data.mcp.gateway

# Tuesday 2026-11-24, 10:00 UTC: inside business hours.
weekday_morning := "2026-11-24T10:00:00Z"

# Saturday 2026-11-28, 10:00 UTC: outside business hours.
saturday := "2026-11-28T10:00:00Z"

# Tuesday 2026-11-24, 22:00 UTC: evening.
weekday_evening := "2026-11-24T22:00:00Z"

req(role, server, tool, ts) := {
	"user": {"id": "u1", "role": role},
	"action": "tool:invoke",
	"resource": {"server": server, "tool": tool},
	"parameters": {"query": "x"},
	"context": {"timestamp": ts},
}

test_admin_may_use_critical_tool_in_business_hours if {
	gateway.allow with input as req("admin", "production", "restart_service", weekday_morning)
}

test_admin_denied_critical_tool_on_weekend if {
	not gateway.allow with input as req("admin", "production", "restart_service", saturday)
	d := gateway.decision with input as req("admin", "production", "restart_service", saturday)
	"critical tools are only available during business hours" in d.reasons
}

test_admin_denied_critical_tool_in_the_evening if {
	not gateway.allow with input as req("admin", "github", "delete_repository", weekday_evening)
}

test_developer_may_write_internal if {
	gateway.allow with input as req("developer", "github", "create_issue", weekday_morning)
}

test_developer_may_use_confidential if {
	gateway.allow with input as req("developer", "github", "merge_pull_request", weekday_morning)
}

test_developer_denied_critical if {
	not gateway.allow with input as req("developer", "production", "read_logs", weekday_morning)
	d := gateway.decision with input as req("developer", "production", "read_logs", weekday_morning)
	"role developer may not use critical tools" in d.reasons
}

test_developer_denied_admin_operation if {
	d := gateway.decision with input as req("developer", "github", "delete_repository", weekday_morning)
	"role developer may not perform admin operations" in d.reasons
}

test_viewer_may_read_internal if {
	gateway.allow with input as req("viewer", "jira", "search_tickets", weekday_evening)
}

test_viewer_denied_write if {
	d := gateway.decision with input as req("viewer", "jira", "create_ticket", weekday_morning)
	not d.allow
	"role viewer may not perform write operations" in d.reasons
}

test_viewer_denied_confidential if {
	not gateway.allow with input as req("viewer", "customers", "lookup_customer", weekday_morning)
}

test_service_account_needs_scope if {
	i := object.union(req("service", "github", "create_issue", weekday_morning), {"user": {"id": "ci", "role": "service", "scopes": ["mcp:github:read"]}})
	d := gateway.decision with input as i
	not d.allow
	"missing scope mcp:github:write" in d.reasons
}

test_service_account_with_scope if {
	i := object.union(req("service", "github", "create_issue", weekday_morning), {"user": {"id": "ci", "role": "service", "scopes": ["mcp:github:write"]}})
	gateway.allow with input as i
}

test_unknown_role_denied if {
	d := gateway.decision with input as req("intern", "docs", "search", weekday_morning)
	not d.allow
	"unknown role \"intern\"" in d.reasons
}

test_missing_user_denied if {
	not gateway.allow with input as {"action": "tool:invoke", "resource": {"server": "docs", "tool": "search"}}
}

test_unknown_tool_denied if {
	d := gateway.decision with input as req("admin", "github", "format_disk", weekday_morning)
	not d.allow
	"unknown tool" in d.reasons
}

test_unknown_server_is_critical if {
	d := gateway.decision with input as req("admin", "mystery", "x", weekday_morning)
	not d.allow
	d.sensitivity == "critical"
	"unknown server" in d.reasons
}

test_declared_sensitivity_only_raises if {
	i := object.union(req("viewer", "docs", "search", weekday_morning), {"resource": {"server": "docs", "tool": "search", "sensitivity": "confidential"}})
	d := gateway.decision with input as i
	d.sensitivity == "confidential"
	not d.allow
	j := object.union(req("viewer", "github", "list_issues", weekday_morning), {"resource": {"server": "github", "tool": "list_issues", "sensitivity": "public"}})
	e := gateway.decision with input as j
	e.sensitivity == "internal"
}

test_unsupported_action_denied if {
	i := object.union(req("admin", "docs", "search", weekday_morning), {"action": "tool:delete"})
	d := gateway.decision with input as i
	not d.allow
	"unsupported action" in d.reasons
}

test_tool_list_allowed_for_viewer if {
	gateway.allow with input as {"user": {"role": "viewer"}, "action": "tool:list", "resource": {"server": "docs"}}
}

test_parameters_are_filtered if {
	i := object.union(req("developer", "github", "create_issue", weekday_morning), {"parameters": {
		"title": "bug",
		"password": "p",
		"API_KEY": "k",
		"github_token": "t",
		"client_secret": "s",
		"db_password": "d",
	}})
	d := gateway.decision with input as i
	d.filtered_parameters == {"query": "x", "title": "bug"}
}

test_cache_ttl_by_sensitivity if {
	public := gateway.decision with input as req("viewer", "docs", "search", weekday_morning)
	public.cache_ttl == 300
	internal := gateway.decision with input as req("viewer", "github", "list_issues", weekday_morning)
	internal.cache_ttl == 180
	confidential := gateway.decision with input as req("developer", "customers", "lookup_customer", weekday_morning)
	confidential.cache_ttl == 120
	critical := gateway.decision with input as req("admin", "production", "read_logs", weekday_morning)
	critical.cache_ttl == 60
}

test_allowed_decision_explains_itself if {
	d := gateway.decision with input as req("developer", "github", "create_issue", weekday_morning)
	d.allow
	d.reasons == ["role developer may write internal tools"]
}

package mcp.a2a_test

import data.mcp.a2a

call(src, dst, action, chain, scopes) := {
	"source_agent": {"id": src},
	"target_agent": {"id": dst},
	"action": action,
	"delegation": {"chain": chain, "scopes": scopes},
}

test_verified_agent_may_delegate if {
	a2a.allow with input as call("planner", "coder", "delegate", [], ["mcp:github:write"])
}

test_limited_agent_may_only_query if {
	a2a.allow with input as call("researcher", "coder", "query", [], [])
	d := a2a.decision with input as call("researcher", "coder", "delegate", [], [])
	not d.allow
	"trust limited is below the required trusted" in d.reasons
}

test_untrusted_agent_denied if {
	not a2a.allow with input as call("scraper", "researcher", "query", [], [])
}

test_registered_trust_cannot_be_raised_by_caller if {
	i := object.union(call("scraper", "researcher", "query", [], []), {"source_agent": {"id": "scraper", "trust_level": "verified"}})
	not a2a.allow with input as i
}

test_unregistered_agent_uses_declared_trust if {
	i := object.union(call("external", "researcher", "query", [], []), {"source_agent": {"id": "external", "trust_level": "limited"}})
	a2a.allow with input as i
}

test_target_may_require_higher_trust if {
	d := a2a.decision with input as call("coder", "ops-bot", "query", [], [])
	not d.allow
	"trust trusted is below the required verified" in d.reasons
}

test_delegation_depth_limited if {
	d := a2a.decision with input as call("planner", "coder", "delegate", ["a", "b", "c"], [])
	not d.allow
	"delegation chain too deep" in d.reasons
}

test_delegation_cycle_denied if {
	d := a2a.decision with input as call("planner", "coder", "delegate", ["coder"], [])
	"delegation cycle" in d.reasons
}

test_scopes_cannot_be_escalated if {
	d := a2a.decision with input as call("coder", "planner", "delegate", [], ["mcp:production:write"])
	not d.allow
	"scope mcp:production:write is not held by the source agent" in d.reasons
}

test_unknown_target_denied if {
	d := a2a.decision with input as call("planner", "nobody", "query", [], [])
	not d.allow
	"unknown target agent" in d.reasons
}

test_unknown_action_denied if {
	d := a2a.decision with input as call("planner", "coder", "launch", [], [])
	"unknown action" in d.reasons
}

test_cache_ttl_by_target_trust if {
	verified := a2a.decision with input as call("planner", "ops-bot", "query", [], [])
	verified.cache_ttl == 60
	trusted := a2a.decision with input as call("planner", "coder", "query", [], [])
	trusted.cache_ttl == 120
}

test_allowed_reason if {
	d := a2a.decision with input as call("planner", "coder", "query", [], [])
	d.reasons == ["planner may query coder"]
}

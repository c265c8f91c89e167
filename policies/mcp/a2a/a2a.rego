# Agent-to-agent (A2A) authorization: may one agent call or delegate to another?
#
# Input:
#   source_agent: { id, trust_level?, scopes? }   (registered agents take their level from data)
#   target_agent: { id }
#   action:       "query" | "delegate" | "execute"
#   delegation:   { chain: [agent ids already in the chain], scopes: [scopes passed on] }
package mcp.a2a

import data.mcp.a2a_actions
import data.mcp.agents
import data.mcp.config
import data.mcp.trust_levels

# METADATA
# title: Allow the agent-to-agent call
# entrypoint: true
default allow := false

allow if {
	source_trust
	target
	count(deny_reasons) == 0
}

# METADATA
# title: A2A decision document
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"cache_ttl": cache_ttl,
}

source := object.union(object.get(input, "source_agent", {}), object.get(agents, input.source_agent.id, {}))

target := agents[input.target_agent.id]

# Registered agents keep their registered trust; the caller cannot raise it.
source_trust := trust_levels[source.trust_level]

required_trust := max([trust_levels[a2a_actions[input.action]], trust_levels[object.get(target, "min_caller_trust", "untrusted")]])

chain := object.get(object.get(input, "delegation", {}), "chain", [])

delegated_scopes := object.get(object.get(input, "delegation", {}), "scopes", [])

deny_reasons contains "unknown source trust level" if not source_trust

deny_reasons contains "unknown target agent" if not target

deny_reasons contains "unknown action" if not a2a_actions[input.action]

deny_reasons contains sprintf("trust %s is below the required %s", [source.trust_level, required_name]) if {
	source_trust < required_trust
	some required_name, l in trust_levels
	l == required_trust
}

deny_reasons contains "delegation chain too deep" if count(chain) >= config.max_delegation_depth

deny_reasons contains "delegation cycle" if input.target_agent.id in chain

deny_reasons contains "delegation cycle" if input.source_agent.id in chain

deny_reasons contains sprintf("scope %s is not held by the source agent", [s]) if {
	some s in delegated_scopes
	not s in object.get(source, "scopes", [])
}

reasons := sort([r | some r in deny_reasons]) if count(deny_reasons) > 0

reasons := [sprintf("%s may %s %s", [input.source_agent.id, input.action, input.target_agent.id])] if count(deny_reasons) == 0

# Trust can change at any time: A2A decisions are cached briefly.
cache_ttl := 60 if {
	target.trust_level == "verified"
} else := 120

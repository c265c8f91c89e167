# The OpenID AuthZEN Authorization API 1.0 certification fixture (the scenario's
# "Required Fixture": subjects alice and bob, records record-1 and record-2, actions
# read, write and delete), for `sark serve` with authzen entrypoint data.authzen.cert.decision.
#
# Input (an Access Evaluation request, as the server passes it):
#   subject:  { type: "user", id, properties?: { role? } }
#   action:   { name: "read" | "write" | "delete", properties?: { soft? } }
#   resource: { type: "record", id, properties?: { status? } }
#   context:  an object; never read (the fixture's decisions hold with or without it)
#
# The model (the entities are in data.json):
# - Only the directory's users, records and actions exist; anything else is denied.
# - A user's groups grant actions: editors read, write and delete; viewers read.
# - A role in subject.properties is what the caller asserts for this request (a claim of
#   its token, say); a role grants its actions as well. The role is read from the request
#   only: a user's properties in data.json are what a subject search proposes for that
#   user, so plain bob (a viewer) may not write, while bob as admin may.
# - A record's status is resource.properties.status when the request sends it, else the
#   directory's. Records in a read-only status (archived) may only be read, except by a
#   read-only override role (admin).
# - An action may require properties: delete only as a soft delete (properties.soft = true).
#
# Search: `candidates` lists the directory's entities of the searched type (every action
# for an action search) with their directory properties; the server evaluates `decision`
# for each one and returns those permitted.
package authzen.cert

import data.authzen.cert.actions
import data.authzen.cert.group_permissions
import data.authzen.cert.read_only_override_roles
import data.authzen.cert.read_only_statuses
import data.authzen.cert.resources
import data.authzen.cert.role_permissions
import data.authzen.cert.subjects

# METADATA
# title: AuthZEN access decision
# description: The fixture's Access Evaluation decision object; a deny carries its reasons in context.reason_admin.
# entrypoint: true
decision := {"decision": true} if allow

decision := {"decision": false, "context": {"reason_admin": {"en": concat("; ", deny_reasons)}}} if not allow

# METADATA
# title: AuthZEN search candidates
# description: The directory's subjects or resources of the searched type, or its actions, with their properties.
# entrypoint: true
candidates contains {"type": type, "id": id, "properties": object.get(s, "properties", {})} if {
	input.search == "subject"
	type := input.subject.type
	some id, s in subjects[type]
}

candidates contains {"type": type, "id": id, "properties": object.get(r, "properties", {})} if {
	input.search == "resource"
	type := input.resource.type
	some id, r in resources[type]
}

candidates contains {"name": name, "properties": object.get(a, "requires", {})} if {
	input.search == "action"
	some name, a in actions
}

default allow := false

allow if {
	subject
	resource
	action
	count(deny_reasons) == 0
}

requested(entity) := object.get(input, entity, {})

subject := subjects[input.subject.type][input.subject.id]

resource := resources[input.resource.type][input.resource.id]

action := actions[input.action.name]

subject_properties := object.get(requested("subject"), "properties", {})

action_properties := object.get(requested("action"), "properties", {})

# The request's resource properties, over the directory's.
resource_properties := object.union(object.get(resource, "properties", {}), object.get(requested("resource"), "properties", {}))

asserted_role := subject_properties.role

permitted_actions contains name if {
	some group in subject.groups
	some name in group_permissions[group]
}

permitted_actions contains name if {
	some name in role_permissions[asserted_role]
}

read_only if resource_properties.status in read_only_statuses

label(entity) := sprintf("%v %v", [object.get(requested(entity), "type", "?"), object.get(requested(entity), "id", "?")])

deny_reasons contains sprintf("unknown subject %s", [label("subject")]) if not subject

deny_reasons contains sprintf("unknown resource %s", [label("resource")]) if not resource

deny_reasons contains sprintf("unknown action %v", [object.get(requested("action"), "name", "?")]) if not action

deny_reasons contains sprintf("%s may not %s", [label("subject"), input.action.name]) if {
	subject
	action
	not input.action.name in permitted_actions
}

deny_reasons contains sprintf("%s is %s: only %s may %s it", [label("resource"), resource_properties.status, concat(", ", read_only_override_roles), input.action.name]) if {
	action.modifies
	read_only
	not asserted_role in read_only_override_roles
}

deny_reasons contains sprintf("%s requires action.properties.%s = %v", [input.action.name, key, value]) if {
	some key, value in object.get(action, "requires", {})
	object.get(action_properties, key, null) != value
}

# The AuthZEN interop "Todo" scenario (openid/authzen, interop scenario todo-1.1, the
# payloads of the Authorization API 1.0 drafts), for `sark serve` with the authzen
# entrypoint data.authzen.todo.decision.
#
# Input (an Access Evaluation request, as the Todo backend sends it):
#   subject:  { type: "user", id: <PID: the `sub` of the user's token> }
#   action:   { name: "can_read_user" | "can_read_todos" | "can_create_todo"
#                     | "can_update_todo" | "can_delete_todo" }
#   resource: { type: "user", id: <email or PID> }                   for can_read_user
#             { type: "todo", id, properties?: { ownerID: <email> } } for the other four
#   context:  an object; not read
#
# The users (PIDs, emails, roles) are the scenario's PIP, in data.json; the policy never
# takes a role from the request. A role grants actions on any todo (`any`) or only on the
# user's own todos (`own`: resource.properties.ownerID is the user's email):
#   viewer       reads users and todos
#   editor       viewer, creates todos, updates and deletes its own
#   admin        editor, deletes any todo
#   evil_genius  editor, updates any todo
#
# Search: `candidates` lists the users (as subjects by PID, or as `user` resources by
# email) and the five actions. Todos are the application's, not the PDP's: a resource
# search for todos has no candidates.
package authzen.todo

import data.authzen.todo.actions
import data.authzen.todo.roles
import data.authzen.todo.users

# METADATA
# title: AuthZEN access decision
# description: True when the Todo user may perform the action on the user or todo.
# entrypoint: true
default decision := false

decision if {
	input.subject.type == "user"
	user := users[input.subject.id]
	actions[input.action.name].resource_type == input.resource.type
	known_resource
	some role in user.roles
	granted(roles[role], user)
}

# METADATA
# title: AuthZEN search candidates
# description: The Todo users (as subjects or user resources) and actions a search may return.
# entrypoint: true
candidates contains {"type": "user", "id": pid, "properties": {"email": u.email, "name": u.name}} if {
	input.search == "subject"
	input.subject.type == "user"
	some pid, u in users
}

candidates contains {"type": "user", "id": u.email, "properties": {"name": u.name}} if {
	input.search == "resource"
	input.resource.type == "user"
	some u in users
}

candidates contains {"name": name} if {
	input.search == "action"
	some name, _ in actions
}

granted(role, _) if input.action.name in role.any

granted(role, user) if {
	input.action.name in role.own
	input.resource.properties.ownerID == user.email
}

# A user resource must be one of the users, by email or PID; any todo id is the
# application's business.
known_resource if {
	input.resource.type == "user"
	some pid, u in users
	input.resource.id in {pid, u.email}
}

known_resource if input.resource.type == "todo"

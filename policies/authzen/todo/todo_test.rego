package authzen.todo_test

import data.authzen.todo

# A representative subset of the scenario's published decisions; every one of them is in
# host/tests/fixtures/authzen/todo-decisions.json, which the host's integration test runs
# against `sark serve`.

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

summer := "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

beth := "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

jerry := "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

everyone := [rick, morty, summer, beth, jerry]

todo_id := "7240d0db-8ff0-41ec-98b2-34a096273b9f"

req(pid, action, resource) := {
	"subject": {"type": "user", "id": pid},
	"action": {"name": action},
	"resource": resource,
	"context": {},
}

user_resource(id) := {"type": "user", "id": id}

any_todo := {"type": "todo", "id": "todo-1"}

owned_by(email) := {"type": "todo", "id": todo_id, "properties": {"ownerID": email}}

allowed(pid, action, resource) if todo.decision with input as req(pid, action, resource)

# --- GET /users/{id} and GET /todos: everyone ------------------------------------------

test_everyone_reads_users_and_todos if {
	every pid in everyone {
		allowed(pid, "can_read_user", user_resource("beth@the-smiths.com"))
		allowed(pid, "can_read_todos", any_todo)
	}
}

test_a_user_resource_may_be_named_by_pid if {
	allowed(jerry, "can_read_user", user_resource(rick))
}

test_an_unknown_user_resource_is_denied if {
	not allowed(jerry, "can_read_user", user_resource("squanchy@example.com"))
}

# --- POST /todos: admin and editor -------------------------------------------------------

test_create_todo if {
	allowed(rick, "can_create_todo", any_todo)
	allowed(morty, "can_create_todo", any_todo)
	allowed(summer, "can_create_todo", any_todo)
	not allowed(beth, "can_create_todo", any_todo)
	not allowed(jerry, "can_create_todo", any_todo)
}

# --- PUT /todos/{id}: evil_genius, or an editor who owns it ------------------------------

test_update_todo if {
	allowed(rick, "can_update_todo", owned_by("morty@the-citadel.com"))
	allowed(morty, "can_update_todo", owned_by("morty@the-citadel.com"))
	not allowed(morty, "can_update_todo", owned_by("rick@the-citadel.com"))
	allowed(summer, "can_update_todo", owned_by("summer@the-smiths.com"))

	# Owning a todo is not enough for a viewer.
	not allowed(beth, "can_update_todo", owned_by("beth@the-smiths.com"))
}

# --- DELETE /todos/{id}: admin, or an editor who owns it ---------------------------------

test_delete_todo if {
	allowed(rick, "can_delete_todo", owned_by("morty@the-citadel.com"))
	allowed(summer, "can_delete_todo", owned_by("summer@the-smiths.com"))
	not allowed(summer, "can_delete_todo", owned_by("rick@the-citadel.com"))
	not allowed(jerry, "can_delete_todo", owned_by("jerry@the-smiths.com"))
}

test_no_owner_means_not_owned if {
	not allowed(morty, "can_delete_todo", {"type": "todo", "id": todo_id})
	allowed(rick, "can_delete_todo", {"type": "todo", "id": todo_id})
}

# The scenario's evaluations example: Morty may update his own todo, not Rick's.
test_boxcar_example_for_morty if {
	not allowed(morty, "can_update_todo", owned_by("rick@the-citadel.com"))
	allowed(morty, "can_update_todo", owned_by("morty@the-citadel.com"))
}

# --- what the policy does not accept ------------------------------------------------------

test_unknown_subject_is_denied if {
	not allowed("CiRmZDk5", "can_read_todos", any_todo)

	# The email is not the subject id: the PEP sends the token's sub.
	not allowed("rick@the-citadel.com", "can_read_todos", any_todo)
}

test_roles_are_not_taken_from_the_request if {
	r := req(jerry, "can_delete_todo", owned_by("rick@the-citadel.com"))
	not todo.decision with input as object.union(r, {"subject": {"type": "user", "id": jerry, "properties": {"roles": ["admin"]}}})
}

test_action_and_resource_type_must_match if {
	not allowed(rick, "can_read_user", any_todo)
	not allowed(rick, "can_delete_todo", user_resource("morty@the-citadel.com"))
	not allowed(rick, "can_fly", any_todo)
}

test_context_is_not_read if {
	r := object.union(req(morty, "can_update_todo", owned_by("morty@the-citadel.com")), {"context": {"ip": "10.0.0.1"}})
	todo.decision with input as r
}

# --- search ------------------------------------------------------------------------------

# Candidates, then the decision for each, as the server runs a search.
who_may(action, resource) := {c.id |
	listed := todo.candidates with input as {"search": "subject", "subject": {"type": "user"}, "action": {"name": action}, "resource": resource, "context": {}}
	some c in listed
	todo.decision with input as req(c.id, action, resource)
}

what_may(pid, resource) := {c.name |
	listed := todo.candidates with input as {"search": "action", "subject": {"type": "user", "id": pid}, "resource": resource, "context": {}}
	some c in listed
	todo.decision with input as {"subject": {"type": "user", "id": pid}, "action": c, "resource": resource, "context": {}}
}

test_subject_search_who_may_delete_mortys_todo if {
	who_may("can_delete_todo", owned_by("morty@the-citadel.com")) == {rick, morty}
}

test_subject_search_who_may_create if {
	who_may("can_create_todo", any_todo) == {rick, morty, summer}
}

test_action_search_on_an_own_todo if {
	what_may(summer, owned_by("summer@the-smiths.com")) == {"can_read_todos", "can_create_todo", "can_update_todo", "can_delete_todo"}
	what_may(beth, owned_by("beth@the-smiths.com")) == {"can_read_todos"}
}

test_resource_search_lists_users_by_email if {
	listed := todo.candidates with input as {"search": "resource", "subject": {"type": "user", "id": jerry}, "action": {"name": "can_read_user"}, "resource": {"type": "user"}, "context": {}}
	{c.id | some c in listed} == {"rick@the-citadel.com", "morty@the-citadel.com", "summer@the-smiths.com", "beth@the-smiths.com", "jerry@the-smiths.com"}
}

test_todos_are_not_candidates if {
	count(todo.candidates) == 0 with input as {"search": "resource", "subject": {"type": "user", "id": rick}, "action": {"name": "can_read_todos"}, "resource": {"type": "todo"}, "context": {}}
	count(todo.candidates) == 0 with input as {"search": "subject", "subject": {"type": "spaceship"}, "action": {"name": "can_read_todos"}, "resource": any_todo, "context": {}}
}

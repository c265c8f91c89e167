# A small role-based access check (the shape of OPA's RBAC example), for `make bench`: it
# measures what a call costs when the evaluation itself is short.
package rbac

# METADATA
# entrypoint: true
default allow := false

allow if "admin" in data.user_roles[input.user]

allow if {
	some grant in user_grants
	input.action == grant.action
	input.type == grant.type
}

user_grants contains grant if {
	some role in data.user_roles[input.user]
	some grant in data.role_grants[role]
}

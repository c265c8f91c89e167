package authzen.cert_test

import data.authzen.cert

# --- helpers ---------------------------------------------------------------------------

user(id) := {"type": "user", "id": id}

admin(id) := {"type": "user", "id": id, "properties": {"role": "admin"}}

record(id) := {"type": "record", "id": id}

record_with(id, status) := {"type": "record", "id": id, "properties": {"status": status}}

act(name) := {"name": name}

req(subject, action, resource) := {"subject": subject, "action": action, "resource": resource, "context": {}}

permitted(request) if {
	d := cert.decision with input as request
	d.decision == true
}

denied(request) if {
	d := cert.decision with input as request
	d.decision == false
}

# A search as the server runs it: the candidates rule with the searched entity's id
# dropped, then the decision for each candidate of the searched type, with the searched
# entity replaced by the candidate (its properties laid over those the caller sent).
search(kind, request) := {key(kind, c) |
	listed := cert.candidates with input as search_input(kind, request)
	some c in listed
	of_searched_type(kind, request, c)
	permitted(evaluation_of(kind, request, c))
}

search_input(kind, request) := object.union(without_id(kind, request), {"search": kind, "context": object.get(request, "context", {})})

without_id("subject", r) := object.union(object.remove(r, ["subject"]), {"subject": object.remove(r.subject, ["id"])})

without_id("resource", r) := object.union(object.remove(r, ["resource"]), {"resource": object.remove(r.resource, ["id"])})

without_id("action", r) := object.remove(r, ["action"])

of_searched_type("action", _, _) := true

of_searched_type(kind, request, c) if {
	kind != "action"
	c.type == request[kind].type
}

evaluation_of(kind, request, c) := object.union(
	object.union({"context": {}}, request),
	{kind: overlay(object.get(request, kind, {}), c)},
)

overlay(sent, c) := object.union(c, {"properties": object.union(object.get(sent, "properties", {}), object.get(c, "properties", {}))})

key("action", c) := c.name

key(kind, c) := c.id if kind != "action"

# --- C.1.4 decision rules 1-8 ----------------------------------------------------------

rule_requests := [
	[req(user("alice"), act("read"), record("record-1")), true],
	[req(user("alice"), act("write"), record("record-1")), true],
	[req(user("bob"), act("read"), record("record-1")), true],
	[req(user("bob"), act("write"), record("record-1")), false],
	[req(user("alice"), act("write"), record_with("record-2", "archived")), false],
	[req(admin("bob"), act("write"), record_with("record-2", "archived")), true],
	[req(user("alice"), {"name": "delete", "properties": {"soft": true}}, record("record-1")), true],
	[req(user("alice"), {"name": "delete", "properties": {"soft": false}}, record("record-1")), false],
]

test_rule_1_alice_reads_record_1 if permitted(req(user("alice"), act("read"), record("record-1")))

test_rule_2_alice_writes_record_1 if permitted(req(user("alice"), act("write"), record("record-1")))

test_rule_3_bob_reads_record_1 if permitted(req(user("bob"), act("read"), record("record-1")))

test_rule_4_bob_may_not_write_record_1 if denied(req(user("bob"), act("write"), record("record-1")))

test_rule_5_alice_may_not_write_an_archived_record if {
	denied(req(user("alice"), act("write"), record_with("record-2", "archived")))

	# The deny follows the status sent, not the record's id.
	denied(req(user("alice"), act("write"), record_with("record-1", "archived")))
}

test_rule_6_an_admin_writes_an_archived_record if {
	permitted(req(admin("bob"), act("write"), record_with("record-2", "archived")))
	permitted(req(admin("bob"), act("write"), record_with("record-1", "archived")))
}

test_rule_7_soft_delete_is_permitted if {
	permitted(req(user("alice"), {"name": "delete", "properties": {"soft": true}}, record("record-1")))
}

test_rule_8_hard_delete_is_denied if {
	denied(req(user("alice"), {"name": "delete", "properties": {"soft": false}}, record("record-1")))

	# No soft flag at all is no soft delete either.
	denied(req(user("alice"), act("delete"), record("record-1")))
}

# Every decision is the boolean object the server reads; a deny says why.
test_decisions_are_objects_with_a_boolean if {
	every pair in rule_requests {
		d := cert.decision with input as pair[0]
		d.decision == pair[1]
	}
}

test_a_deny_gives_its_reason if {
	d := cert.decision with input as req(user("bob"), act("write"), record("record-1"))
	d.context.reason_admin.en == "user bob may not write"
	e := cert.decision with input as req(user("alice"), act("write"), record_with("record-2", "archived"))
	e.context.reason_admin.en == "record record-2 is archived: only admin may write it"
	f := cert.decision with input as req(user("alice"), {"name": "delete", "properties": {"soft": false}}, record("record-1"))
	f.context.reason_admin.en == "delete requires action.properties.soft = true"
}

# --- C.1.6: context, extra properties and unknown fields change nothing ----------------

test_rules_hold_with_context if {
	every pair in rule_requests {
		r := object.union(pair[0], {"context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}})
		d := cert.decision with input as r
		d.decision == pair[1]
	}
}

test_rules_hold_without_context if {
	every pair in rule_requests {
		d := cert.decision with input as object.remove(pair[0], ["context"])
		d.decision == pair[1]
	}
}

test_rules_hold_with_unknown_fields if {
	every pair in rule_requests {
		r := object.union(pair[0], {"foo": "bar", "futureField": {"nested": true}})
		d := cert.decision with input as r
		d.decision == pair[1]
	}
}

# C.2.2.8: a role other than admin and unrelated properties do not matter.
test_additional_properties_are_ignored if {
	permitted({
		"subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
		"action": {"name": "read", "properties": {"method": "GET"}},
		"resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}},
	})
	permitted(req(
		{"type": "user", "id": "alice", "properties": {"department": "Sales"}},
		{"name": "write", "properties": {"method": "PUT"}},
		record_with("record-1", "active"),
	))
	denied(req({"type": "user", "id": "bob", "properties": {"department": "Sales"}}, act("write"), record("record-1")))
}

# C.3.2.3 / C.3.2.7: batch items are single evaluations.
test_batch_items if {
	permitted(req(user("alice"), act("write"), record_with("record-1", "active")))
	denied(req(user("alice"), act("write"), record_with("record-2", "archived")))
	denied(req(user("alice"), act("write"), record_with("record-2", "archived")))
	permitted(req(admin("bob"), act("write"), record_with("record-2", "archived")))
}

# --- unknown entities -------------------------------------------------------------------

test_unknown_subject_is_denied if {
	denied(req(user("nonexistent-user"), act("read"), record("record-1")))
	d := cert.decision with input as req(user("nonexistent-user"), act("read"), record("record-1"))
	d.context.reason_admin.en == "unknown subject user nonexistent-user"

	# Claiming a role does not make a stranger known.
	denied(req(admin("nonexistent-user"), act("write"), record_with("record-2", "archived")))
}

test_unknown_types_are_denied if {
	denied(req({"type": "spaceship", "id": "alice"}, act("read"), record("record-1")))
	denied(req(user("alice"), act("read"), {"type": "spaceship", "id": "record-1"}))
}

test_unknown_resource_and_action_are_denied if {
	denied(req(user("alice"), act("read"), record("record-3")))
	denied(req(user("alice"), act("launch"), record("record-1")))
}

test_no_input_is_a_deny if {
	d := cert.decision
	d.decision == false
}

# --- C.1.5 search requirements S1-S6 (through candidates + decision) ---------------------

# S1 (C.4.2.1): users who may read record-1.
test_s1_subject_search if {
	found := search("subject", req({"type": "user"}, act("read"), record("record-1")))
	{"alice", "bob"} == found
}

# C.4.2.2 / C.4.2.3: context and a subject id sent anyway do not change the results.
test_s1_subject_search_ignores_context_and_id if {
	with_context := object.union(req({"type": "user"}, act("read"), record("record-1")), {"context": {"ip": "192.168.1.1"}})
	search("subject", with_context) == {"alice", "bob"}
	search("subject", req(user("alice"), act("read"), record("record-1"))) == {"alice", "bob"}
}

# S2 (C.4.3.1, C.4.3.3): records alice may read.
test_s2_resource_search if {
	found := search("resource", req(user("alice"), act("read"), {"type": "record"}))
	"record-1" in found
	search("resource", req(user("alice"), act("read"), record("record-1"))) == found
}

# S3 (C.4.4.1): what alice may do on record-1.
test_s3_action_search if {
	found := search("action", {"subject": user("alice"), "resource": record("record-1")})
	"read" in found
	"write" in found
}

# S4 (C.4.2.4): users who may write record-2 sent as archived: bob, whose directory
# entry carries the admin role; not alice.
test_s4_subject_search_with_resource_properties if {
	found := search("subject", req({"type": "user"}, act("write"), record_with("record-2", "archived")))
	found == {"bob"}
}

# S5 (C.4.3.4): records bob as admin may write.
test_s5_resource_search_with_subject_properties if {
	found := search("resource", req(admin("bob"), act("write"), {"type": "record"}))
	"record-2" in found
}

# Without the admin claim bob may write nothing.
test_s5_plain_bob_writes_nothing if {
	count(search("resource", req(user("bob"), act("write"), {"type": "record"}))) == 0
}

# S6 (C.4.4.3): what bob as admin may do on archived record-2.
test_s6_action_search_with_properties if {
	found := search("action", {"subject": admin("bob"), "resource": record_with("record-2", "archived")})
	"write" in found
}

# Alice may only read an archived record.
test_action_search_on_an_archived_record if {
	search("action", {"subject": user("alice"), "resource": record_with("record-2", "archived")}) == {"read"}
}

# C.4.6.1: an unknown subject identifier finds nothing.
test_unknown_subject_finds_nothing if {
	count(search("action", {"subject": user("nonexistent-user"), "resource": record("record-1")})) == 0
	count(search("resource", req(user("nonexistent-user"), act("read"), {"type": "record"}))) == 0
}

# C.4.6.2: an unknown type has no candidates at all.
test_unknown_type_has_no_candidates if {
	count(cert.candidates) == 0 with input as search_input("subject", req({"type": "spaceship"}, act("read"), record("record-1")))
	count(cert.candidates) == 0 with input as search_input("resource", req(user("alice"), act("read"), {"type": "spaceship"}))
	count(search("subject", req({"type": "spaceship"}, act("read"), record("record-1")))) == 0
	count(search("action", {"subject": user("alice"), "resource": {"type": "spaceship", "id": "record-1"}})) == 0
}

# Candidates carry the directory's properties (bob's role, the records' status).
test_candidates_carry_directory_properties if {
	listed := cert.candidates with input as search_input("subject", req({"type": "user"}, act("read"), record("record-1")))
	{"type": "user", "id": "bob", "properties": {"role": "admin"}} in listed
	{"type": "user", "id": "alice", "properties": {}} in listed
	records := cert.candidates with input as search_input("resource", req(user("alice"), act("read"), {"type": "record"}))
	{"type": "record", "id": "record-2", "properties": {"status": "archived"}} in records
	actions := cert.candidates with input as search_input("action", {"subject": user("alice"), "resource": record("record-1")})
	{"name": "delete", "properties": {"soft": true}} in actions
}

test_no_input_has_no_candidates if {
	count(cert.candidates) == 0
}

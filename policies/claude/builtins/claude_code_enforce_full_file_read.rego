# METADATA
# scope: package
# title: Enforce full file read (builtin)
# custom:
#   severity: MEDIUM
#   id: BUILTIN-ENFORCE-FULL-READ
#   routing:
#     required_events: ["PreToolUse"]
package cupcake.policies.builtins.claude_code_enforce_full_file_read

# Cupcake's `claude_code_enforce_full_file_read` builtin (alias `enforce_full_file_read`):
# the agent reads whole files, never a slice.
#
#   builtins:
#     claude_code_enforce_full_file_read:
#       enabled: true
#       max_lines: 2000     # must be > 0; not used yet (as in Cupcake)
#       message: "..."      # default: "Please read the entire file first (files under 2000 lines must be read completely)"
#
# deny BUILTIN-ENFORCE-FULL-READ (MEDIUM)  a Read whose tool_input has an `offset` or `limit`
#   key, whatever its value: "<message>".
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reason, routing:
# every PreToolUse event). No deviation. Like Cupcake's, it does not look at the file's length:
# Rego cannot read the file, so max_lines is carried in input.builtin_config but unused.

import rego.v1

default_message := "Please read the entire file first (files under 2000 lines must be read completely)"

message := m if {
	m := input.builtin_config.claude_code_enforce_full_file_read.message
	is_string(m)
} else := default_message

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Read"
	partial_read
	decision := {"rule_id": "BUILTIN-ENFORCE-FULL-READ", "reason": message, "severity": "MEDIUM"}
}

partial_read if "offset" in object.keys(input.tool_input)

partial_read if "limit" in object.keys(input.tool_input)

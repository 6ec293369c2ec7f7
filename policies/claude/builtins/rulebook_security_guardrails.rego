# METADATA
# scope: package
# title: Rulebook security guardrails (builtin)
# custom:
#   severity: HIGH
#   id: BUILTIN-RULEBOOK-SECURITY
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Grep", "Glob", "Bash", "Task", "WebFetch"]
package cupcake.policies.builtins.rulebook_security_guardrails

# Cupcake's `rulebook_security_guardrails` builtin: the agent may not touch the policy engine's
# own configuration, by any tool, read or write.
#
#   builtins:
#     rulebook_security_guardrails:
#       enabled: true
#       message: "..."              # default: "Cupcake configuration files are protected from modification"
#       protected_paths: [".cupcake/"]   # the default
#
# halt BUILTIN-RULEBOOK-SECURITY  a file tool (Edit Write MultiEdit NotebookEdit Read Grep Glob
#                                 WebFetch Task) whose path, pattern, URL or prompt names a
#                                 protected path: "<message> (blocked file operation on <it>)"
#                                 (the resolved path first, then the raw fields)
# halt BUILTIN-RULEBOOK-SECURITY  any Bash command mentioning one:
#                                 "<message> (detected <path> modification in bash command)"
# halt BUILTIN-RULEBOOK-SECURITY  `ln -s` involving one:
#                                 "<message> (symlink creation involving <path> is not permitted)"
# Matching is case-insensitive substring matching on the path without its trailing `/`, after
# collapsing `//` and `/./`, as in Cupcake.
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reasons, routing).
# Deviations:
# - `.cupcake/` and `.watchdog/` (watchdog's own policy root) are always protected, and the
#   configured protected_paths are protected too; Cupcake's Rego ignored them and only ever
#   protected `.cupcake/`.
# - Every candidate field is checked (Cupcake took the first present one, so a Glob with a
#   harmless `path` and a `.cupcake/**` pattern passed); the reason names the first match.

import rego.v1

default_message := "Cupcake configuration files are protected from modification"

message := m if {
	m := input.builtin_config.rulebook_security_guardrails.message
	is_string(m)
} else := default_message

configured := [p |
	some p in input.builtin_config.rulebook_security_guardrails.protected_paths
	is_string(p)
	trim_space(p) != ""
]

guarded := array.concat([".cupcake/", ".watchdog/"], configured)

file_tools := {"Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Grep", "Glob", "WebFetch", "Task"}

guardrails_halt(reason) := {"rule_id": "BUILTIN-RULEBOOK-SECURITY", "reason": reason, "severity": "HIGH"}

# the core of a protected path: lower case, without the trailing `/` (".cupcake")
core(path) := c if {
	c := trim_right(lower(path), "/")
	c != ""
} else := lower(path)

normalized(text) := regex.replace(regex.replace(lower(text), `/{2,}`, "/"), `/(\./)+`, "/")

names(text, path) if contains(normalized(text), core(path))

candidates := array.concat(
	array.concat(
		[p | p := input.resolved_file_path; is_string(p)],
		[p |
			some key in raw_fields
			p := input.tool_input[key]
			is_string(p)
		],
	),
	[p |
		some edit in input.tool_input.edits
		some key in ["resolved_file_path", "file_path"]
		p := edit[key]
		is_string(p)
	],
)

# a Task's prompt is where it names files; WebFetch's prompt is only what to extract
raw_fields := ["file_path", "path", "pattern", "url", "notebook_path", "prompt"] if {
	input.tool_name == "Task"
} else := ["file_path", "path", "pattern", "url", "notebook_path"]

hits := [c |
	some c in candidates
	some g in guarded
	names(c, g)
]

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in file_tools
	count(hits) > 0
	decision := guardrails_halt(concat("", [message, " (blocked file operation on ", hits[0], ")"]))
}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := input.tool_input.command
	some g in guarded
	names(cmd, g)
	decision := guardrails_halt(concat("", [message, " (detected ", g, " modification in bash command)"]))
}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	regex.match(`(^|[\s;&|(])ln\s`, cmd)
	regex.match(`\s(-[a-z]*s|--symbolic)`, cmd)
	some g in guarded
	names(cmd, g)
	decision := guardrails_halt(concat("", [message, " (symlink creation involving ", core(g), " is not permitted)"]))
}

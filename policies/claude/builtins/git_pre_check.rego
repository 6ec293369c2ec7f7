# METADATA
# scope: package
# title: Git pre-check (builtin)
# custom:
#   severity: HIGH
#   id: BUILTIN-GIT-CHECK
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.builtins.git_pre_check

# Cupcake's `git_pre_check` builtin: checks that must pass before a commit, push or merge.
#
#   builtins:
#     git_pre_check:
#       enabled: true
#       checks:
#         - command: "cargo test"          # signal __builtin_git_check_0, 30 s
#           message: "Tests must pass"
#
# halt BUILTIN-GIT-CHECK  a Bash command containing `git commit`, `git push` or `git merge`
#   (lower-cased, whitespace collapsed by preprocessing) while some signal
#   input.signals.__builtin_git_check_<i> failed ({exit_code != 0, output, ...}):
#   "Git pre-checks failed:\n- <output, or 'Check failed with exit code N'>" (one line per failed
#   check, in index order). A check that printed something and exited 0 passes.
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reason, routing).
# Deviations:
# - The command is read from input.tool_input.command: Cupcake's Rego read
#   input.params.command, which Claude Code never sends, so it never fired.
# - Failed checks are listed in index order (Cupcake: signal key order).
# It fires once the signals runner runs the generated __builtin_git_check_<i> signals.

import rego.v1

prefix := "__builtin_git_check_"

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	git_operation(lower(input.tool_input.command))
	count(failures) > 0
	lines := [concat("", ["- ", m]) | some m in failures]
	reason := concat("\n", ["Git pre-checks failed:", concat("\n", lines)])
	decision := {"rule_id": "BUILTIN-GIT-CHECK", "reason": reason, "severity": "HIGH"}
}

git_operation(cmd) if {
	some operation in ["git commit", "git push", "git merge"]
	contains(cmd, operation)
}

indices := [to_number(suffix) |
	some name in object.keys(input.signals)
	startswith(name, prefix)
	suffix := substring(name, count(prefix), -1)
	regex.match(`^[0-9]+$`, suffix)
]

failures := [check_output(result) |
	some i in numbers.range(0, last_index)
	name := concat("", [prefix, format_int(i, 10)])
	name in object.keys(input.signals)
	result := input.signals[name]
	check_failed(result)
] if {
	count(indices) > 0
} else := []

# rego-cpp's max() compares numbers as strings (max([10, 2]) is 2): compare them one by one
last_index := found[0] if {
	found := [i |
		some i in indices
		every j in indices {
			j <= i
		}
	]
}

check_failed(result) if {
	is_object(result)
	is_number(result.exit_code)
	result.exit_code != 0
}

check_output(result) := result.output if {
	is_string(result.output)
	result.output != ""
} else := concat("", ["Check failed with exit code ", format_int(result.exit_code, 10)])

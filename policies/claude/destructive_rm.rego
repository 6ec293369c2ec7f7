# METADATA
# scope: package
# title: Never delete the home directory, the filesystem root or system folders
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.destructive_rm

import rego.v1

# Targets whose recursive deletion is never part of a coding task.
protected_targets := {"/", "/*", "~", "~/", "~/*", "$HOME", "$HOME/", "${HOME}", "/home", "/etc",
	"/usr", "/var", "/bin", "/boot", "/lib", "/opt", "/root", "/sbin", ".", "..", "*"}

recursive_rm(cmd) if regex.match(`(^|[;&|]\s*|sudo\s+)rm\s+(-[a-zA-Z]*[rR][a-zA-Z]*\s+|--recursive\s+)`, cmd)

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := input.tool_input.command
	recursive_rm(cmd)
	some word in split(cmd, " ")
	word in protected_targets
	decision := {
		"rule_id": "WD-RM-ROOT",
		"reason": concat("", ["Recursive delete of '", word, "' would wipe the home directory, the project or the system; delete specific paths instead."]),
		"severity": "CRITICAL",
	}
}

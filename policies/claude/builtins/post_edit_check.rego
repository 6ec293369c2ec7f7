# METADATA
# scope: package
# title: Post-edit check (builtin)
# custom:
#   severity: MEDIUM
#   id: BUILTIN-POST-EDIT
#   routing:
#     required_events: ["PostToolUse"]
package cupcake.policies.builtins.post_edit_check

# Cupcake's `post_edit_check` builtin: a check per file extension after every edit.
#
#   builtins:
#     post_edit_check:
#       enabled: true
#       by_extension:
#         py: {command: "ruff check .", message: "Lint Python"}   # signal __builtin_post_edit_py, 10 s
#
# After Edit, Write, MultiEdit or NotebookEdit of `<name>.<ext>`, with the signal
# input.signals.__builtin_post_edit_<ext>:
# ask BUILTIN-POST-EDIT (MEDIUM)  the check failed ({exit_code != 0, output, ...}):
#   "File validation failed for <path>\n<output, or 'Validation failed with exit code N'>\n\n
#   Do you want to continue anyway?" (on PostToolUse watchdog hands an ask's reason to the
#   agent as context)
# add_context  the check passed: "✓ Validation passed for <path>"
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reasons, routing).
# Deviations:
# - The path is read from input.tool_input.file_path (or notebook_path): Cupcake's Rego read
#   input.params.file_path, which Claude Code never sends, so it never fired.
# - "Validation passed" is said only when the check ran and passed; Cupcake also said it for
#   files whose extension has no check.
# It fires once the signals runner runs the generated __builtin_post_edit_<ext> signal.

import rego.v1

editing_tools := {"Edit", "Write", "MultiEdit", "NotebookEdit"}

edited_path := p if {
	p := input.tool_input.file_path
	is_string(p)
} else := p if {
	p := input.tool_input.notebook_path
	is_string(p)
}

extension := ext if {
	parts := split(edited_path, "/")
	name := parts[count(parts) - 1]
	contains(name, ".")
	pieces := split(name, ".")
	ext := pieces[count(pieces) - 1]
	ext != ""
}

signal_name := concat("", ["__builtin_post_edit_", extension])

ran if signal_name in object.keys(input.signals)

ask contains decision if {
	input.hook_event_name == "PostToolUse"
	input.tool_name in editing_tools
	ran
	result := input.signals[signal_name]
	validation_failed(result)
	reason := concat("\n", [
		concat(" ", ["File validation failed for", edited_path]),
		validation_output(result),
		"",
		"Do you want to continue anyway?",
	])
	decision := {"rule_id": "BUILTIN-POST-EDIT", "reason": reason, "severity": "MEDIUM"}
}

add_context contains text if {
	input.hook_event_name == "PostToolUse"
	input.tool_name in editing_tools
	ran
	not validation_failed(input.signals[signal_name])
	text := concat(" ", ["✓ Validation passed for", edited_path])
}

validation_failed(result) if {
	is_object(result)
	is_number(result.exit_code)
	result.exit_code != 0
}

validation_output(result) := result.output if {
	is_string(result.output)
	result.output != ""
} else := concat("", ["Validation failed with exit code ", format_int(result.exit_code, 10)])

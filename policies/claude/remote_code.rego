# METADATA
# scope: package
# title: No piping a download straight into a shell
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.remote_code

import rego.v1

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	regex.match(`(curl|wget)\s[^|]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b`, input.tool_input.command)
	decision := {
		"rule_id": "WD-PIPE-SHELL",
		"reason": "Piping a download into a shell runs unreviewed remote code; download the script, read it, then run it.",
		"severity": "HIGH",
	}
}

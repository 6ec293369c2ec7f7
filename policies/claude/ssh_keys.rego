# METADATA
# scope: package
# title: SSH trust files are off limits
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Write", "Edit", "MultiEdit", "Bash"]
package cupcake.policies.ssh_keys

import rego.v1

trust_files := ["/.ssh/authorized_keys", "/.ssh/authorized_keys2", "/.ssh/config"]

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in {"Write", "Edit", "MultiEdit"}
	some suffix in trust_files
	endswith(input.resolved_file_path, suffix)
	decision := {
		"rule_id": "WD-SSH-TRUST",
		"reason": "Changing SSH trust files grants lasting access to this machine; a coding task never needs it.",
		"severity": "CRITICAL",
	}
}

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	regex.match(`(>>?|tee(\s+-a)?)\s*\S*\.ssh/authorized_keys`, input.tool_input.command)
	decision := {
		"rule_id": "WD-SSH-TRUST",
		"reason": "Changing SSH trust files grants lasting access to this machine; a coding task never needs it.",
		"severity": "CRITICAL",
	}
}

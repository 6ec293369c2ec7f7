# METADATA
# scope: package
# title: Reading .env files exposes secrets to the transcript
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Read", "Bash"]
package cupcake.policies.env_files

import rego.v1

env_file(path) if regex.match(`(^|/)\.env(\.[A-Za-z0-9_-]+)?$`, path)

example_file(path) if regex.match(`\.(example|sample|template|dist)$`, path)

ask contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Read"
	env_file(input.resolved_file_path)
	not example_file(input.resolved_file_path)
	decision := {
		"rule_id": "WD-ENV-READ",
		"reason": "Reading this .env file puts its secrets into the agent's context. Allow only if the task needs them.",
		"severity": "MEDIUM",
	}
}

ask contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	regex.match(`\b(cat|less|more|head|tail|bat|strings)\s+[^|;&]*\.env(\s|$|\.(local|prod|production|dev|development))`, input.tool_input.command)
	decision := {
		"rule_id": "WD-ENV-READ",
		"reason": "Printing a .env file puts its secrets into the agent's context. Allow only if the task needs them.",
		"severity": "MEDIUM",
	}
}

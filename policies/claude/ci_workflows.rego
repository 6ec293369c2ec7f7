# METADATA
# scope: package
# title: CI workflow edits change what runs with the repository's secrets
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Write", "Edit", "MultiEdit"]
package cupcake.policies.ci_workflows

import rego.v1

ci_path(path) if contains(path, "/.github/workflows/")

ci_path(path) if endswith(path, "/.gitlab-ci.yml")

# Whether a CI edit is fine depends on the task: a judge looks at it when escalation is on.
edit_tools := {"Write", "Edit", "MultiEdit", "NotebookEdit"}

escalate contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in edit_tools
	ci_path(input.resolved_file_path)
	decision := {
		"rule_id": "WD-CI-EDIT",
		"reason": "Edits a CI workflow, which runs with the repository's secrets.",
		"severity": "MEDIUM",
		"rubric": "general",
	}
}

add_context contains "watchdog: this edit changes a CI workflow; keep secrets out of logs and pin third-party actions." if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in edit_tools
	ci_path(input.resolved_file_path)
}

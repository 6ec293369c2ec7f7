# METADATA
# scope: package
# title: Force-pushes rewrite shared history
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.git_force_push

import rego.v1

force_push(cmd) if regex.match(`git\s+push\b.*(\s--force\b|\s-f\b|\s--force-with-lease\b|\s\+\S+)`, cmd)

to_default_branch(cmd) if regex.match(`\b(main|master|trunk|production)\b`, cmd)

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	force_push(input.tool_input.command)
	to_default_branch(input.tool_input.command)
	decision := {
		"rule_id": "WD-GIT-FORCE-DEFAULT",
		"reason": "Force-pushing the default branch rewrites everyone's history; push a new branch and open a pull request.",
		"severity": "CRITICAL",
	}
}

ask contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	force_push(input.tool_input.command)
	not to_default_branch(input.tool_input.command)
	decision := {
		"rule_id": "WD-GIT-FORCE",
		"reason": "This force-push rewrites the remote branch's history. Confirm that nobody else works on it.",
		"severity": "MEDIUM",
	}
}

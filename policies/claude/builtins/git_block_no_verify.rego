# METADATA
# scope: package
# title: Git block --no-verify (builtin)
# custom:
#   severity: HIGH
#   id: BUILTIN-GIT-BLOCK-NO-VERIFY
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.builtins.git_block_no_verify

# Cupcake's `git_block_no_verify` builtin: commit hooks must run.
#
#   builtins:
#     git_block_no_verify:
#       enabled: true
#       message: "..."      # default: "Git operations with --no-verify are not permitted. Commit hooks must run."
#       exceptions: []      # commands containing one of these strings are let through
#
# deny BUILTIN-GIT-BLOCK-NO-VERIFY  git commit/push/merge with --no-verify, or `git commit -n`
#   (any short-flag cluster with n: -n, -an, -nm): "Git operations with --no-verify are not
#   permitted. Commit hooks must run for code quality and security checks."
# deny BUILTIN-GIT-BLOCK-NO-VERIFY  disabling the hooks: core.hooksPath set to /dev/null,
#   chmod removing the execute bit, rm/unlink/trash/mv/shred/truncate under .git/hooks:
#   "Disabling git hooks is not permitted. Hooks are required for code quality and security."
# The command is matched lower-cased, after preprocessing collapsed its whitespace, so
# `git  commit\t--no-verify` is caught.
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reasons, routing).
# Deviations:
# - core.hooksPath is matched lower-case (Cupcake lower-cased the command, then looked for
#   "core.hooksPath", so that rule never fired), also as `git -c core.hooksPath=/dev/null`.
# - A `message` other than the default replaces the --no-verify reason, and `exceptions` are
#   honoured; Cupcake's Rego ignored both.
# - The hook-removal verbs are matched as words (Cupcake's substring "rm" matched "format").
# - chmod is caught for any mode without the owner's execute bit (644, 0600, -x, a-x).

import rego.v1

default_message := "Git operations with --no-verify are not permitted. Commit hooks must run."

cupcake_reason := "Git operations with --no-verify are not permitted. Commit hooks must run for code quality and security checks."

no_verify_reason := m if {
	m := input.builtin_config.git_block_no_verify.message
	is_string(m)
	m != default_message
} else := cupcake_reason

hooks_reason := "Disabling git hooks is not permitted. Hooks are required for code quality and security."

no_verify_deny(reason) := {"rule_id": "BUILTIN-GIT-BLOCK-NO-VERIFY", "reason": reason, "severity": "HIGH"}

excepted(cmd) if {
	some exception in input.builtin_config.git_block_no_verify.exceptions
	is_string(exception)
	exception != ""
	contains(cmd, lower(exception))
}

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	skips_hooks(cmd)
	not excepted(cmd)
	decision := no_verify_deny(no_verify_reason)
}

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	disables_hooks(cmd)
	not excepted(cmd)
	decision := no_verify_deny(hooks_reason)
}

skips_hooks(cmd) if {
	contains(cmd, "git")
	some operation in ["commit", "push", "merge"]
	contains(cmd, operation)
	contains(cmd, "--no-verify")
}

skips_hooks(cmd) if {
	contains(cmd, "git")
	contains(cmd, "commit")
	regex.match(`\s-[a-z]*n[a-z]*\s`, concat("", [cmd, " "]))
}

disables_hooks(cmd) if {
	contains(cmd, "git")
	contains(cmd, "core.hookspath")
	contains(cmd, "/dev/null")
}

disables_hooks(cmd) if {
	regex.match(`(^|[\s;&|(])chmod\s`, cmd)
	contains(cmd, ".git/hooks")
	regex.match(`\s([ugoa]*-[rwx]*x[rwx]*|0?[0246][0-7][0-7])(\s|$)`, cmd)
}

disables_hooks(cmd) if {
	contains(cmd, ".git/hooks")
	regex.match(`(^|[\s;&|(])(rm|unlink|trash|mv|shred|truncate)(\s|$)`, cmd)
}

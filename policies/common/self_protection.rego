# METADATA
# scope: package
# title: The agent may not switch off its own guard rails
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.self_protection

import data.cupcake.helpers.shell
import rego.v1

# Rules by kind of call: the sets below are computed only when the event is that kind of
# call, so other events skip their rules.
#
# shell_named: a shell call, naming a word that one of the shell rules below cannot match
# without. (One test before `some`: rego-cpp evaluates every test of a body that iterates.)
default shell_named := false

shell_named if {
	shell.shell_call
	regex.match(`\.claude/settings|watchdog|cupcake`, shell.lscan)
}

deny contains decision if {
	shell_named
	some decision in shell_deny
}

deny contains decision if {
	shell.file_call
	some decision in file_deny
}

file_path := shell.lpath if shell.file_call

settings_file := `(^|/)\.claude/settings(\.local)?\.json$`

guard_dir := `(^|/)\.(watchdog|cupcake)(/|$)|/\.config/(watchdog|cupcake)(/|$)`

# In Claude Code's settings: the hooks (which run watchdog) and the permission mode.
guard_keys := `hook|watchdog|cupcake|disableallhooks|defaultmode|bypasspermissions|['"]permissions['"]\s*:\s*\{\s*\}|['"](bash)?\(?\*\)?['"]`

file_deny contains decision if {
	contains(file_path, ".claude/settings")
	regex.match(settings_file, file_path)
	regex.match(guard_keys, lower(concat("\n", [shell.content, shell.old_content])))
	decision := {
		"rule_id": "WD-SELF-PROTECT",
		"reason": "Changes Claude Code's hooks or permission mode, which would switch off or bypass watchdog. Only the user should change these.",
		"severity": "CRITICAL",
	}
}

file_deny contains decision if {
	shell.mentions(file_path, ["watchdog", "cupcake"])
	regex.match(guard_dir, file_path)
	decision := {
		"rule_id": "WD-SELF-PROTECT",
		"reason": "Edits watchdog's or Cupcake's own policies. Only the user should change these.",
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	shell.bash_call
	regex.match(`\.claude/settings|watchdog|cupcake`, shell.ltext)
	regex.match(`\.claude/settings(\.local)?\.json|(^|[\s/'"=])\.(watchdog|cupcake)(/|\s|$)|\.config/(watchdog|cupcake)`, shell.ltext)
	regex.match(`\b(rm|mv|cp|tee|truncate|chmod|chattr|ln|unlink|install)\b|\bsed\s+(-\S+\s+)*-i|\bperl\s+-[a-z]*i|>|\bjq\b[^|]*>`, shell.ltext)
	decision := {
		"rule_id": "WD-SELF-PROTECT",
		"reason": "Modifies Claude Code's settings or watchdog's policies from the shell, which could switch off the hooks. Only the user should change these.",
		"severity": "CRITICAL",
	}
}

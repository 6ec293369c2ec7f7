# METADATA
# scope: package
# title: Making something run again later, or logging in without the user
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.persistence

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
	regex.match(`authorized_keys|/etc/sudoers|nopasswd|chmod|bashrc|bash_|profile|zshrc|zshenv|zlogin|kshrc|cshrc|/etc/environment|config\.fish|crontab|batch|launchctl|systemctl|/etc/cron|/\.git/hooks/|/\.config/autostart/|/systemd/|\bat\b`, shell.lscan)
}

deny contains decision if {
	shell_named
	some decision in shell_deny
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

deny contains decision if {
	shell.file_call
	some decision in file_deny
}

escalate contains decision if {
	shell.file_call
	some decision in file_escalate
}

file_path := shell.lpath if shell.file_call

lcommand := lower(shell.command)

file_deny contains decision if {
	endswith(file_path, "/.ssh/authorized_keys")
	decision := authorized_keys
}

shell_deny contains decision if {
	contains(shell.ltext, "authorized_keys")
	regex.match(`authorized_keys2?\b`, shell.ltext)
	regex.match(`>>?|\btee\b|\bcp\b|\bmv\b|\bsed\s+-i|\bcat\b[^;&|]*>`, shell.ltext)
	decision := authorized_keys
}

authorized_keys := {
	"rule_id": "WD-SSH-AUTHORIZED-KEYS",
	"reason": "Adds a key to ~/.ssh/authorized_keys, which lets its owner log in to this machine. Add keys yourself.",
	"severity": "CRITICAL",
}

file_deny contains decision if {
	startswith(file_path, "/etc/sudoers")
	regex.match(`^/etc/sudoers(\.d/.*)?$`, file_path)
	decision := sudoers
}

shell_deny contains decision if {
	shell.mentions(shell.ltext, ["/etc/sudoers", "nopasswd"])
	regex.match(`\b(tee|cp|mv|visudo|install)\b[^;&|]*/etc/sudoers|>>?\s*/etc/sudoers|nopasswd:?\s*all`, shell.ltext)
	decision := sudoers
}

sudoers := {
	"rule_id": "WD-SUDOERS",
	"reason": "Changes sudoers: grants root, usually without a password. That is for the machine's owner to do by hand.",
	"severity": "CRITICAL",
}

shell_deny contains decision if {
	contains(shell.ltext, "chmod")
	regex.match(`\bchmod\s+(-\S+\s+)*([ugoa]*\+[rwx]*s|[46][0-7]{3})\s`, shell.ltext)
	decision := {
		"rule_id": "WD-SETUID",
		"reason": "Sets the setuid bit: whoever runs that file gets its owner's rights (root, for a system binary).",
		"severity": "CRITICAL",
	}
}

# Shell startup files run in every new shell. Editing them is ordinary (PATH, aliases); making
# them redefine standard commands, run downloads or put temporary folders on PATH is not.
rc_file := `(^|/|~)\.(bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|kshrc|cshrc|tcshrc)\b|/etc/(profile|bash\.bashrc|zsh/zshrc|environment)\b|config\.fish\b`

# Words every rc_file name holds.
rc_named(s) if regex.match(`bashrc|bash_|profile|zshrc|zshenv|zlogin|kshrc|cshrc|/etc/environment|config\.fish`, s)

hijack := `alias\s+(sudo|ls|cd|grep|cat|git|ssh|rm|cp|mv|apt|apt-get|yum|brew|curl|python[0-9]*|pip|npm|docker|kubectl|su|passwd)=|path=[^\n;]*(/tmp|/var/tmp|/dev/shm|/\.cache)|\b(curl|wget)\b|ld_preload|prompt_command|\brm\s+-[a-z]*r|\bnc\s|/dev/tcp`

file_deny contains decision if {
	rc_named(file_path)
	regex.match(rc_file, file_path)
	regex.match(hijack, shell.lcontent)
	decision := rc_hijack
}

shell_deny contains decision if {
	shell.bash_call
	rc_named(lcommand)
	regex.match(rc_file, lcommand)
	regex.match(`>>|\btee\b|open\(|\bsed\s+-i`, lcommand)
	regex.match(hijack, lcommand)
	decision := rc_hijack
}

rc_hijack := {
	"rule_id": "WD-SHELL-RC-HIJACK",
	"reason": "Makes every new shell redefine a standard command, run a download or trust a temporary folder on PATH.",
	"severity": "CRITICAL",
}

# Things that start code later: cron, at, systemd, launchd, autostart, git hooks, editor tasks.
persist_path := `^/etc/(cron|systemd|init\.d|rc\.local|profile\.d|ld\.so\.preload|xdg/autostart)|/\.config/(systemd|autostart)/|/library/launch(agents|daemons)/|/\.git/hooks/|/\.husky/|/var/spool/cron`

file_escalate contains decision if {
	regex.match(`/etc/|/\.config/|/library/launch|/\.git/hooks/|/\.husky/|/var/spool/cron`, file_path)
	regex.match(persist_path, file_path)
	decision := persist
}

file_escalate contains decision if {
	endswith(file_path, "/.vscode/tasks.json")
	regex.match(`folderopen`, shell.lcontent)
	decision := persist
}

file_escalate contains decision if {
	endswith(file_path, "/.ssh/config")
	regex.match(`localcommand|proxycommand|permitlocalcommand|forwardagent\s+yes`, shell.lcontent)
	decision := persist
}

shell_escalate contains decision if {
	shell.bash_call
	schedules
	decision := persist
}

# cron, at, batch, launchd, systemd units, git hooks and autostart entries from the shell.
default schedules := false

schedules if {
	regex.match(`crontab|batch|launchctl|systemctl|/etc/cron|/\.git/hooks/|/\.config/autostart/|/systemd/`, shell.ltext)
	regex.match(`\bcrontab\s+(-\s*$|-\s*[;&|]|[^-l\s])|\|\s*crontab\b|\bbatch\b\s*<|\blaunchctl\s+(load|bootstrap)|\bsystemctl\s[^;&|]*\b(link|edit)\b|>>?\s*\S*(/etc/cron|/\.git/hooks/|/\.config/autostart/|/\.config/systemd/)|\btee\b[^;&|]*(/etc/cron|/\.git/hooks/|/systemd/)`, shell.ltext)
}

schedules if {
	contains(shell.ltext, "at")
	regex.match(`\bat\s+(now|noon|midnight|[0-9])`, shell.ltext)
}

persist := {
	"rule_id": "WD-PERSISTENCE",
	"reason": "Sets up something that runs later on its own (cron, at, a service, autostart, a git hook, an editor task, an ssh command).",
	"severity": "HIGH",
	"rubric": "general",
	"wait": true,
}

# Replacing a whole configuration file in the home directory (not editing it) loses the user's
# settings; editing with Edit is the normal way.
file_escalate contains decision if {
	shell.action.tool == "Write"
	regex.match(`^/(home/[^/]+|root|users/[^/]+)/\.[^/]+$|^/(home/[^/]+|root|users/[^/]+)/\.config/[^/]+/[^/]+$`, file_path)
	decision := {
		"rule_id": "WD-HOME-CONFIG-OVERWRITE",
		"reason": "Overwrites a configuration file in the home directory, replacing whatever the user had there.",
		"severity": "MEDIUM",
		"rubric": "destructive",
		"wait": false,
	}
}

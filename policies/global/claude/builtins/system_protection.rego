# METADATA
# scope: package
# title: System protection (global builtin)
# custom:
#   severity: CRITICAL
#   id: GLOBAL-BUILTIN-SYSTEM-PROTECTION
#   routing:
#     required_events: ["PreToolUse"]
package cupcake.policies.builtins.system_protection

# Cupcake's global `system_protection` builtin: the agent keeps out of the operating system.
# Install it machine-wide: copy this file to ~/.config/cupcake/policies/claude/builtins/ (or
# ~/.config/watchdog/...) and enable it in the rulebook.yml next to that policies/ folder:
#
#   builtins:
#     system_protection:
#       enabled: true
#       additional_paths: ["/opt/company/"]   # more path prefixes to protect
#       message: "..."                        # default: "Access to critical system path blocked"
#
# (The compiler renames this package to cupcake.global.policies.builtins.system_protection.)
#
# halt GLOBAL-BUILTIN-SYSTEM-PROTECTION (CRITICAL)  a file tool (Edit Write MultiEdit
#   NotebookEdit Read Grep Glob WebFetch Task) on a path starting with /etc/ /system/ /usr/bin/
#   /usr/sbin/ /bin/ /sbin/ /boot/ /lib/ /lib64/ /sys/ /proc/ /dev/ /root/ /var/log/secure
#   /var/log/auth, macOS /library/launchagents|launchdaemons|preferences/ /private/etc/
#   /private/var/, ~/.ssh/ ~/.gnupg/ ~/.config/ ~/.local/share/keyrings/ ~/library/launchagents/
#   (also as /home/<user>/... and /users/<user>/...), Windows c:\windows\ c:\program files\ ...:
#   "<message>: <path>"
# halt GLOBAL-BUILTIN-SYSTEM-PROTECTION (CRITICAL)  a Bash command naming such a path, or
#   using sudo/doas: "Command blocked - references critical system paths"
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reasons, routing).
# Deviations:
# - additional_paths are protected (Cupcake's Rego ignored them), and a `message` other than
#   the default replaces the Bash reason too.
# - Home paths are also recognised in absolute form (/home/u/.ssh/); Claude Code sends
#   absolute paths, which Cupcake's `~/` prefixes never matched. A Glob's pattern and a
#   WebFetch file:// URL are checked; a Grep's pattern (a regex, not a path) is not.
# - In Bash a system path must start a word (`src/lib/x`, `./dev/x` are not /lib/, /dev/),
#   /dev/null, /dev/std*, /dev/tty, /dev/zero, /dev/*random and /dev/fd/N are allowed, and
#   sudo/doas must be words (`pseudo code` passed for "sudo "). Cupcake halted `2>/dev/null`.

import rego.v1

default_message := "Access to critical system path blocked"

message := m if {
	m := input.builtin_config.system_protection.message
	is_string(m)
} else := default_message

additional := [lower(p) |
	some p in input.builtin_config.system_protection.additional_paths
	is_string(p)
	trim_space(p) != ""
]

file_tools := {"Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Grep", "Glob", "WebFetch", "Task"}

system_halt(reason) := {"rule_id": "GLOBAL-BUILTIN-SYSTEM-PROTECTION", "reason": reason, "severity": "CRITICAL"}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in file_tools
	hits := [c | some c in candidates; system_path(lower(c))]
	count(hits) > 0
	decision := system_halt(concat("", [message, ": ", hits[0]]))
}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	references_system(lower(input.tool_input.command))
	decision := system_halt(bash_reason)
}

bash_reason := "Command blocked - references critical system paths" if {
	message == default_message
} else := concat("", [message, " (the command references a critical system path)"])

# the raw paths first (Cupcake reported those), then the resolved ones
candidates := array.concat(
	array.concat(
		[p |
			some key in path_fields
			p := input.tool_input[key]
			is_string(p)
			p != ""
		],
		[substring(u, 7, -1) |
			u := input.tool_input.url
			is_string(u)
			startswith(lower(u), "file://")
		],
	),
	array.concat(
		[p | p := input.resolved_file_path; is_string(p)],
		[p |
			some edit in input.tool_input.edits
			some key in ["file_path", "resolved_file_path"]
			p := edit[key]
			is_string(p)
		],
	),
)

path_fields := ["file_path", "path", "notebook_path", "pattern"] if {
	input.tool_name == "Glob"
} else := ["file_path", "path", "notebook_path"]

system_prefixes := [
	"/etc/", "/system/", "/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/boot/", "/lib/",
	"/lib64/", "/sys/", "/proc/", "/dev/", "/root/", "/var/log/secure", "/var/log/auth",
	"/library/launchagents/", "/library/launchdaemons/", "/library/preferences/",
	"/private/etc/", "/private/var/",
	"~/.ssh/", "~/library/launchagents/", "~/.gnupg/", "~/.config/", "~/.local/share/keyrings/",
	`c:\windows\`, `c:\program files\`, `c:\program files (x86)\`, `c:\programdata\`,
	`c:\users\all users\`, `c:\bootmgr`, "%systemroot%", "%windir%",
]

system_path(path) if {
	some prefix in array.concat(system_prefixes, additional)
	startswith(path, prefix)
}

system_path(path) if {
	regex.match(`^/(home|users)/[^/]+/(\.ssh|\.gnupg|\.config|\.local/share/keyrings|library/launchagents)/`, path)
}

system_path(path) if {
	some extra in additional
	not startswith(extra, "/")
	not startswith(extra, "~")
	contains(path, concat("", ["/", extra]))
}

references_system(cmd) if {
	harmless := `/dev/(null|stdin|stdout|stderr|tty|zero|random|urandom|fd/[0-9]+)`
	rest := regex.replace(cmd, harmless, "")
	regex.match(`(^|[^a-z0-9_.~-])(/etc/|/system/|/usr/bin/|/usr/sbin/|/boot/|/lib/|/sys/|/proc/|/dev/|/library/launch|/private/etc/|/private/var/)`, rest)
}

references_system(cmd) if {
	some marker in ["~/.ssh/", "$home/.ssh/", "${home}/.ssh/", `c:\windows\`, "%systemroot%", "%windir%"]
	contains(cmd, marker)
}

references_system(cmd) if regex.match(`(^|[\s;&|(])(sudo|doas)\s`, cmd)

references_system(cmd) if {
	some extra in additional
	contains(cmd, extra)
}

# METADATA
# scope: package
# title: Cupcake execution protection (global builtin)
# custom:
#   severity: CRITICAL
#   id: GLOBAL-BUILTIN-CUPCAKE-EXEC
#   routing:
#     required_events: ["PreToolUse"]
package cupcake.policies.builtins.cupcake_exec_protection

# Cupcake's global `cupcake_exec_protection` builtin: the agent does not run the policy engine
# itself (to probe its policies, re-initialise them or evaluate events of its own making).
# Install it machine-wide: copy this file to ~/.config/cupcake/policies/claude/builtins/ (or
# ~/.config/watchdog/...) and enable it in the rulebook.yml next to that policies/ folder:
#
#   builtins:
#     cupcake_exec_protection:
#       enabled: true
#       allowed_commands: ["version", "help"]   # subcommands the agent may run
#       message: "..."    # default: "Direct execution of Cupcake binary is not permitted"
#
# (The compiler renames this package to cupcake.global.policies.builtins.cupcake_exec_protection.)
#
# halt GLOBAL-BUILTIN-CUPCAKE-EXEC (CRITICAL) "<message>" for a Bash command that
# - runs `cupcake` (any path to it, after sudo/env/exec/nohup/time/xargs/timeout and VAR=x) at
#   the start of a command, a pipeline stage, `$(...)` or backticks, unless its first argument
#   (leading dashes dropped) is in allowed_commands;
# - runs watchdog's engine: `watchdog hook|eval|verify|inspect|worker|fake-judge`, or
#   `python -m watchdog`;
# - builds or installs cupcake (cargo run/build/install --bin|-p cupcake, brew/apt/yum/snap
#   install cupcake);
# - hands cupcake to a shell, eval, exec, alias or function (`sh x`, `source x`, `eval ...`
#   with "cupcake" anywhere in the command).
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reason, routing).
# Deviations:
# - Cupcake matched "cupcake " anywhere (so `echo "cupcake recipes"` and
#   `git commit -m "fix cupcake bug"` halted the session) and missed a bare `cupcake`; here the
#   command must be in command position. Mentions of target/release/cupcake, /usr/bin/cupcake
#   etc. that are not run are not blocked.
# - allowed_commands and message are honoured (Cupcake's Rego read a data key that never
#   exists, so both were ignored).
# - watchdog, this engine, is protected like cupcake.

import rego.v1

default_message := "Direct execution of Cupcake binary is not permitted"

message := m if {
	m := input.builtin_config.cupcake_exec_protection.message
	is_string(m)
} else := default_message

allowed := {lower(trim_left(c, "-")) |
	some c in input.builtin_config.cupcake_exec_protection.allowed_commands
	is_string(c)
}

watchdog_subcommands := {"hook", "eval", "verify", "inspect", "worker", "fake-judge"}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	runs_engine(lower(input.tool_input.command))
	decision := {"rule_id": "GLOBAL-BUILTIN-CUPCAKE-EXEC", "reason": message, "severity": "CRITICAL"}
}

runs_engine(cmd) if {
	some part in command_parts(cmd)
	call := invocation(part)
	call[0] == "cupcake"
	not allowed_argument(call[1])
}

runs_engine(cmd) if {
	some part in command_parts(cmd)
	call := invocation(part)
	call[0] == "watchdog"
	call[1] in watchdog_subcommands
	not allowed_argument(call[1])
}

runs_engine(cmd) if regex.match(`(^|[\s;&|(])python[0-9.]*\s+-m\s+watchdog(\s|$)`, cmd)

runs_engine(cmd) if {
	some pattern in [
		"cargo run --bin cupcake", "cargo r --bin cupcake", "cargo run -p cupcake",
		"cargo r -p cupcake", "cargo run --release --bin cupcake", "cargo build --bin cupcake",
		"cargo install cupcake", "brew install cupcake", "apt install cupcake",
		"yum install cupcake", "snap install cupcake",
	]
	contains(cmd, pattern)
}

runs_engine(cmd) if {
	some shell in ["sh ", "bash ", "zsh ", "source ", ". "]
	startswith(cmd, shell)
	contains(cmd, "cupcake")
}

runs_engine(cmd) if {
	some keyword in ["eval ", "exec ", "alias ", "function "]
	contains(cmd, keyword)
	contains(cmd, "cupcake")
}

allowed_argument(argument) if {
	name := trim_left(argument, "-")
	name != ""
	name in allowed
}

# the commands of a command line: split at ; & && || | newlines $( ` ( )
command_parts(cmd) := [p |
	some raw in regex.split("[;&|\\n`()]|\\$\\(", cmd)
	p := trim_space(raw)
	p != ""
]

# words that run the next word as a command
wrappers := {
	"sudo", "doas", "env", "exec", "nohup", "time", "command", "builtin", "nice", "xargs",
	"timeout", "stdbuf", "setsid", "then", "do", "else", "if", "while", "until", "!", "{",
}

skippable(word) if word in wrappers

skippable(word) if startswith(word, "-")

skippable(word) if regex.match(`^[a-z_][a-z0-9_]*=`, word)

skippable(word) if regex.match(`^[0-9.]+[smhd]?$`, word)

# [program name, first argument] of one command
invocation(part) := [name, argument] if {
	words := [trim(w, "'\"") | some w in split(part, " "); w != ""]
	starts := [i | some i; w := words[i]; not skippable(w)]
	start := starts[0]
	path := split(words[start], "/")
	name := path[count(path) - 1]
	argument := next_word(words, start)
}

next_word(words, i) := words[i + 1] if {
	count(words) > i + 1
} else := ""

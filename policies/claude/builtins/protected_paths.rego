# METADATA
# scope: package
# title: Protected paths (builtin)
# custom:
#   severity: HIGH
#   id: BUILTIN-PROTECTED-PATHS
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Edit", "Write", "MultiEdit", "NotebookEdit", "Bash"]
package cupcake.policies.builtins.protected_paths

# Cupcake's `protected_paths` builtin: the paths in rulebook.yml are read-only for the agent.
#
#   builtins:
#     protected_paths:
#       enabled: true
#       message: "This file is protected"     # default: "This path is read-only and cannot be modified"
#       paths: ["production.env", "src/legacy/", "*.secret", "/etc/app/"]
#
# A path is an exact path, a directory (trailing `/`, or any prefix followed by `/`; relative
# ones match anywhere), a bare file name (matches in any directory) or a `*`/`?` glob, all
# compared case-insensitively. Reads through Read/Grep/Glob are not routed here: allowed.
#
# halt BUILTIN-PROTECTED-PATHS         Edit/Write/NotebookEdit/MultiEdit of a protected file:
#                                      "<message> (<resolved path>)"
# halt BUILTIN-PROTECTED-PATHS         a Bash command that mentions a protected path and is not
#                                      a plain read: "<message> (only read operations allowed)"
# halt BUILTIN-PROTECTED-PATHS-PARENT  a destructive Bash command (rm, mv, chmod, find -delete,
#                                      ...) on a directory holding a protected path:
#                                      "<message> (<path> would be affected by operation on <dir>)"
# halt BUILTIN-PROTECTED-PATHS-SCRIPT  `python -c`, `node -e`, ... mentioning a protected path:
#                                      "<message> (inline script mentions '<path>')"
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule ids, reasons, routing).
# Deviations, all on the side of the protection Cupcake intends:
# - The Bash read whitelist is checked per command: every part of `a; b && c | d` must start
#   with a read verb (cat less more head tail grep egrep fgrep zgrep wc file stat ls find awk
#   sed sort uniq diff cmp md5sum sha256sum hexdump strings od, or cd/echo/printf/pwd/true/
#   test and `git diff|log|show|blame|status|ls-files|grep`), with no `>` redirection other than
#   to /dev/null or another descriptor, no `$(...)`, backticks or `<(...)`, no `sed -i`,
#   `find -delete/-exec`, `awk system()/inplace`, `sort -o`. Cupcake accepted a read verb
#   anywhere in the command, so `rm x; cat x` passed.
# - Globs also match the words of a Bash command (Cupcake looked for the literal `*.secret`).
# - A relative path with a directory (`config/app.yml`) also matches the end of a path
#   (Cupcake only matched it as a directory).
# - PARENT needs a destructive verb: watchdog computes affected_parent_directories for every
#   command, Cupcake only for destructive ones. Relative protected paths are anchored at the
#   event's cwd there; globs and `~` paths are not checked by PARENT.

import rego.v1

default_message := "This path is read-only and cannot be modified"

message := m if {
	m := input.builtin_config.protected_paths.message
	is_string(m)
} else := default_message

protected := [p |
	some p in input.builtin_config.protected_paths.paths
	is_string(p)
	trim_space(p) != ""
]

protected_paths_halt(rule_id, reason) := {"rule_id": rule_id, "reason": reason, "severity": "HIGH"}

# --- file tools ---------------------------------------------------------------------------

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in {"Edit", "Write", "NotebookEdit"}
	path := input.resolved_file_path
	is_string(path)
	is_protected(path)
	decision := protected_paths_halt("BUILTIN-PROTECTED-PATHS", concat("", [message, " (", path, ")"]))
}

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "MultiEdit"
	some path in multiedit_paths
	is_protected(path)
	decision := protected_paths_halt("BUILTIN-PROTECTED-PATHS", concat("", [message, " (", path, ")"]))
}

multiedit_paths contains path if {
	path := input.resolved_file_path
	is_string(path)
}

multiedit_paths contains path if {
	some edit in input.tool_input.edits
	path := edit.resolved_file_path
	is_string(path)
}

is_protected(path) if {
	some pattern in protected
	path_matches(lower(path), lower(pattern))
}

path_matches(path, pattern) if path == pattern

# a bare file name, or a relative file path, at the end of the path
path_matches(path, pattern) if {
	not is_glob(pattern)
	not startswith(pattern, "/")
	not endswith(pattern, "/")
	endswith(path, concat("", ["/", pattern]))
}

# an absolute directory: a prefix of the path
path_matches(path, pattern) if {
	not is_glob(pattern)
	startswith(pattern, "/")
	startswith(path, dir_prefix(pattern))
}

# a relative directory: anywhere in the path
path_matches(path, pattern) if {
	not is_glob(pattern)
	not startswith(pattern, "/")
	contains(path, concat("", ["/", dir_prefix(pattern)]))
}

path_matches(path, pattern) if {
	is_glob(pattern)
	regex.match(glob_regex(pattern), path)
}

is_glob(pattern) if contains(pattern, "*")

is_glob(pattern) if contains(pattern, "?")

dir_prefix(pattern) := concat("", [trim_right(pattern, "/"), "/"])

# `*` is any run of characters (as in Cupcake, across `/` too), `?` one character.
glob_regex(pattern) := concat("", ["^", glob_body(pattern), "$"]) if {
	startswith(pattern, "/")
} else := concat("", ["(^|/)", glob_body(pattern), "$"])

glob_body(pattern) := body if {
	escaped := replace(replace(replace(replace(replace(replace(replace(replace(replace(
		replace(replace(replace(replace(pattern, `\`, `\\`), ".", `\.`), "+", `\+`),
		"(", `\(`), ")", `\)`), "[", `\[`), "]", `\]`), "{", `\{`), "}", `\}`),
		"^", `\^`), "$", `\$`), "|", `\|`), "*", ".*")
	body := replace(escaped, "?", ".")
}

# --- Bash ---------------------------------------------------------------------------------

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	some pattern in protected
	mentions(cmd, lower(pattern))
	not read_only(cmd)
	decision := protected_paths_halt("BUILTIN-PROTECTED-PATHS", concat("", [message, " (only read operations allowed)"]))
}

mentions(cmd, pattern) if {
	not is_glob(pattern)
	contains(cmd, pattern)
}

mentions(cmd, pattern) if {
	not is_glob(pattern)
	endswith(pattern, "/")
	contains(cmd, trim_right(pattern, "/"))
}

mentions(cmd, pattern) if {
	is_glob(pattern)
	some word in split(cmd, " ")
	regex.match(glob_regex(pattern), trim(word, "'\"`;()&|<>"))
}

read_verbs := {
	"cat", "less", "more", "head", "tail", "grep", "egrep", "fgrep", "zgrep", "wc", "file",
	"stat", "ls", "find", "awk", "sed", "sort", "uniq", "diff", "cmp", "md5sum", "sha256sum",
	"hexdump", "strings", "od",
}

# commands that touch no file on their own (a redirection is checked separately)
neutral_verbs := {"cd", "pushd", "popd", "pwd", "echo", "printf", "true", "false", "test"}

git_read_subcommands := {"diff", "log", "show", "blame", "status", "ls-files", "grep"}

read_only(cmd) if {
	not writes_or_substitutes(cmd)
	parts := [s |
		some raw in regex.split(`;|&&|&|\|\||\||\n`, cmd)
		s := trim_space(raw)
		s != ""
	]
	count(parts) > 0
	every part in parts {
		read_part(part)
	}
}

writes_or_substitutes(cmd) if {
	contains(regex.replace(cmd, `[0-9]*>>?\s*(/dev/null|&[0-9]+)`, ""), ">")
}

writes_or_substitutes(cmd) if contains(cmd, "$(")

writes_or_substitutes(cmd) if contains(cmd, "`")

writes_or_substitutes(cmd) if contains(cmd, "<(")

read_part(part) if {
	words := command_words(part)
	verb := base_name(words[0])
	verb in read_verbs
	not unsafe_use(verb, part)
}

read_part(part) if {
	words := command_words(part)
	words[0] in neutral_verbs
}

read_part(part) if {
	words := command_words(part)
	words[0] == "git"
	words[1] in git_read_subcommands
	not contains(part, "--output")
}

# the words of one command, leading VAR=value assignments dropped
command_words(part) := words if {
	ws := [w | some w in split(part, " "); w != ""]
	first := [i | some i; w := ws[i]; not regex.match(`^[a-z_][a-z0-9_]*=`, w)]
	words := array.slice(ws, first[0], count(ws))
}

base_name(word) := name if {
	parts := split(word, "/")
	name := parts[count(parts) - 1]
}

unsafe_use("sed", part) if regex.match(`\s(-[a-z]*i|--in-place)`, part)

unsafe_use("find", part) if regex.match(`\s-(delete|exec|execdir|ok|okdir|fprint|fprint0|fprintf|fls)(\s|$)`, part)

unsafe_use("awk", part) if contains(part, "system(")

unsafe_use("awk", part) if contains(part, "inplace")

unsafe_use("sort", part) if regex.match(`\s(-o|--output)`, part)

# --- Bash: a destructive command on a parent directory -------------------------------------

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	destructive(cmd)
	some dir in input.affected_parent_directories
	is_string(dir)
	some pattern in protected
	target := absolute_target(pattern)
	under(lower(target), lower(dir))
	reason := concat("", [message, " (", pattern, " would be affected by operation on ", dir, ")"])
	decision := protected_paths_halt("BUILTIN-PROTECTED-PATHS-PARENT", reason)
}

destructive(cmd) if {
	regex.match(`(^|[\s;&|(])(rm|rmdir|unlink|mv|chmod|chown|chgrp|truncate|shred)(\s|$)`, cmd)
}

destructive(cmd) if {
	regex.match(`(^|[\s;&|(])find\s`, cmd)
	regex.match(`\s-(delete|exec|execdir)(\s|$)`, cmd)
}

destructive(cmd) if {
	regex.match(`(^|[\s;&|(])rsync\s`, cmd)
	contains(cmd, "--delete")
}

absolute_target(pattern) := trim_right(pattern, "/") if {
	startswith(pattern, "/")
	not is_glob(pattern)
}

absolute_target(pattern) := concat("/", [trim_right(input.cwd, "/"), trim_right(pattern, "/")]) if {
	not startswith(pattern, "/")
	not startswith(pattern, "~")
	not is_glob(pattern)
	is_string(input.cwd)
}

under(path, dir) if path == dir

under(path, dir) if startswith(path, concat("", [trim_right(dir, "/"), "/"]))

# --- Bash: inline interpreter scripts ------------------------------------------------------

halt contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	cmd := lower(input.tool_input.command)
	regex.match(`(^|[\s;&|(])(python[0-9.]*|ruby|perl|node|php)\s+(-c|-e)\s`, cmd)
	some pattern in protected
	mentions(cmd, lower(pattern))
	reason := concat("", [message, " (inline script mentions '", pattern, "')"])
	decision := protected_paths_halt("BUILTIN-PROTECTED-PATHS-SCRIPT", reason)
}

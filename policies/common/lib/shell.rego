# Shared helpers for the default pack: how a shell command reads, where a file's content is,
# and the markers several policies use (production, local hosts, network senders).
# Not a policy: no routing, no verbs. Policies import it as data.cupcake.helpers.shell.
package cupcake.helpers.shell

import rego.v1

# rego-cpp keeps input strings in their JSON-escaped form: a newline arrives as the two
# characters \ and n, a double quote as \ and ". norm() turns escaped whitespace into spaces
# and escaped double quotes into single quotes, so that patterns see words and quotes. Never
# put a normalised string into a decision's text: use safe() for that.
norm(s) := regex.replace(regex.replace(s, `\\[nrt]`, " "), `\\"`, "'")

# Text fit for a reason: no backslashes left to form a bad escape.
safe(s) := regex.replace(s, `\\`, "")

# The normalized action (watchdog's input.watchdog.action): the same fields for every harness.
action := object.get(object.get(input, "watchdog", {}), "action", {})

# The command of a shell call, "" otherwise.
command := norm(object.get(action, "command", "")) if action.tool_class == "shell"

command := "" if object.get(action, "tool_class", "") != "shell"

# Commands that run text they are given (bash -c, ssh, eval, python -c, command substitution,
# here-strings into a shell, xargs): what sits in their quotes is code.
runs_strings(cmd) if contains(cmd, "`")

runs_strings(cmd) if regex.match(`\b(ba|z|da|k)?sh\s+(-\S*\s+)*-c\b|\bssh\s|\beval\b|\bsu\s+-c\b|\bxargs\b|\b(python[0-9.]*|perl|ruby|node|php|pwsh|powershell)\s+(-\S+\s+)*(-[ecr]|-)\b|\bexecSync\b|\b(psql|mysql|mariadb|sqlite3|cqlsh|mongosh|mongo|redis-cli|sqlcmd|clickhouse-client|bq|snowsql|duckdb)\b|\bsystem\(|\b((ba|z|da)?sh|python[0-9.]*|perl|ruby|node)\s*<<<|\$\(|\|\s*(sudo\s+)?(ba|z|da)?sh\b|\bat\s+(now|[0-9])|\bwatch\s`, cmd)

# The command as the shell will act on it. Text that is only printed, searched or committed
# (`echo 'rm -rf /'`, `grep 'git reset --hard' f`, `git commit -m '...'`, a here-doc given to
# cat) is dropped, so it cannot trigger a rule; commands that run their strings keep them.
effective(cmd) := regex.replace(cmd, `['"]`, " ") if runs_strings(cmd)

effective(cmd) := regex.replace(regex.replace(unquoted_words(cmd), `'[^']*'|"[^"]*"`, "''"), `['"]`, "") if {
	not runs_strings(cmd)
}

# Here-doc bodies cut, and quotes taken off single words ('/etc/x' is /etc/x), so that what is
# left in quotes is text with spaces: messages, patterns, SQL.
unquoted_words(cmd) := regex.replace(
	regex.replace(regex.replace(cmd, `<<-?\s*['"]?\w+['"]?[\s\S]*$`, "<<"), `'([^'\s]*)'`, "$1"),
	`"([^"\s]*)"`, "$1",
)

text := effective(command)

ltext := lower(text)

# The words of a command, split on whitespace, quotes, parentheses and separators.
words(s) := [w | some w in regex.split(`[\s'"(),;=]+`, s); w != ""]

# File tools: the path and the new content (Write's content, Edit's new_string).
file_tools := {"Write", "Edit", "MultiEdit", "NotebookEdit"}

# The first file the tool names, resolved against the event's cwd (symlinks followed).
path := object.get(action, "resolved_paths", [""])[0] if count(object.get(action, "resolved_paths", [])) > 0

path := "" if count(object.get(action, "resolved_paths", [])) == 0

content := norm(object.get(action, "content", ""))

old_content := norm(object.get(action, "old_content", ""))

url := norm(object.get(action, "url", ""))

# "prod", "production" as a word part: ledger-prod.cluster, --context prod-eu, $PROD_DB_URL.
production(s) if regex.match(`(^|[^a-z])prod(uction)?([^a-z]|$)`, lower(s))

# Hosts named by URLs in s, lower-cased.
url_hosts(s) := {lower(h) |
	some u in regex.find_n(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s'"?#|)]+`, s, -1)
	h := regex.replace(regex.replace(u, `^[^:]+://([^@/]*@)?`, ""), `:[0-9]+$`, "")
}

local_host(h) if regex.match(`^(localhost|127\.[0-9.]+|0\.0\.0\.0|\[::1\]|::1|[a-z0-9-]+\.local|host\.docker\.internal)$`, h)

# A host other than this machine appears (as a URL, or as user@host / host: for ssh-like tools).
remote_host(s) if {
	some h in url_hosts(s)
	not local_host(h)
}

remote_host(s) if regex.match(`\b(scp|rsync|sftp)\b[^;&|]*\s(\S+@)?[a-z0-9][a-z0-9.-]*:\S*\s*$|\b(scp|rsync|sftp|ssh|nc|ncat|netcat|telnet|ftp)\b[^;&|]*(@|\s)[a-z0-9.-]+\.[a-z]{2,}|\b(nc|ncat|netcat|telnet)\s+(-\S+\s+)*[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|@[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:|\bcurl\s[^;&|]*\s[a-z0-9-]+\.[a-z0-9.-]*[a-z]{2,}/`, lower(s))

# Something that sends data off the machine: uploads, posts, raw sockets, mail, DNS lookups
# carrying command output, and the network calls of inline programs and app code.
sends_data(s) if regex.match(`\b(curl|wget|http|https|xh)\b[^;&|]*(\s(-d|--data\S*|-F|--form|-T|--upload-file|--post-data|--post-file|--body-data)\b|-X\s*(POST|PUT|PATCH)\b)|\|\s*(nc|ncat|netcat|socat)\s|\b(nc|ncat|netcat)\s[^;&|]*<|\b(scp|sftp|ftp|tftp)\s|\brsync\s[^;&|]*\s\S+:\S*\s*$|\bmail\s[^;&|]*<|\b(nslookup|dig|host|ping)\s[^;&|]*\$\(|\burlopen\(|requests\.(post|put)\(|urllib\.request\.Request\(|sendBeacon\(|\bfetch\(|XMLHttpRequest|\baxios\.(post|put)\(|http\.request\(|https\.request\(|--upload-file`, s)

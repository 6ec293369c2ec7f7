# Shared helpers for the default pack: how a shell command reads, where a file's content is,
# and the markers several policies use (production, local hosts, network senders).
# Not a policy: no routing, no verbs. Policies import it as data.cupcake.helpers.shell.
#
# Cost: rego-cpp compiles a regex at every call (a long pattern costs up to 1 ms, even on an
# empty string) and scans about 20 ns a character, while contains() costs a few µs. So every
# rule first tests what kind of call this is (shell_call, file_call, ...: computed once per
# event), then a word its regex cannot match without, and only then the regex. Values derived
# from the event are rules without arguments, computed once per event (a function with
# arguments is computed again at every call). policies/README.md lists the other rego-cpp
# behaviours the pack is written around.
package cupcake.helpers.shell

import rego.v1

# rego-cpp keeps input strings in their JSON-escaped form: a newline arrives as the two
# characters \ and n, a double quote as \ and ". norm() turns escaped whitespace into spaces
# and escaped double quotes into single quotes, so that patterns see words and quotes. Never
# put a normalised string into a decision's text: use safe() for that. (Plain replace() does
# what regex.replace(s, `\\[nrt]`, " ") did at a tenth of the cost: "\n" is stored escaped,
# like the input.)
norm(s) := replace(replace(replace(replace(s, "\n", " "), "\r", " "), "\t", " "), "\"", "'")

# Text fit for a reason: no backslashes left to form a bad escape.
safe(s) := regex.replace(s, `\\`, "")

# Does s contain one of these words? The test a rule makes before its regex.
mentions(s, words) if {
	some w in words
	contains(s, w)
}

# The normalized action (watchdog's input.watchdog.action): the same fields for every harness.
action := object.get(object.get(input, "watchdog", {}), "action", {})

# What kind of call this is, once per event: rules test one of these first.
default pre_tool := false

pre_tool if action.event == "PreToolUse"

default shell_call := false

shell_call if {
	pre_tool
	action.tool_class == "shell"
}

default bash_call := false

bash_call if {
	pre_tool
	action.tool == "Bash"
}

# File tools: the path and the new content (Write's content, Edit's new_string).
file_tools := {"Write", "Edit", "MultiEdit", "NotebookEdit"}

default file_call := false

file_call if {
	pre_tool
	action.tool in file_tools
}

default read_call := false

read_call if {
	pre_tool
	action.tool == "Read"
}

default fetch_call := false

fetch_call if {
	pre_tool
	action.tool == "WebFetch"
}

# The command of a shell call, "" otherwise.
command := norm(object.get(action, "command", "")) if action.tool_class == "shell"

command := "" if object.get(action, "tool_class", "") != "shell"

# Commands that run text they are given (bash -c, ssh, eval, python -c, command substitution,
# here-strings into a shell, xargs): what sits in their quotes is code.
default runs_strings := false

runs_strings if contains(command, "`")

runs_strings if contains(command, "$(")

runs_strings if {
	contains(command, "-c")
	regex.match(`\b(ba|z|da|k)?sh\s+(-\S*\s+)*-c\b|\bsu\s+-c\b`, command)
}

runs_strings if {
	contains(command, "|")
	regex.match(`\|\s*(sudo\s+)?(ba|z|da)?sh\b`, command)
}

runs_strings if {
	contains(command, "<<<")
	regex.match(`\b((ba|z|da)?sh|python[0-9.]*|perl|ruby|node)\s*<<<`, command)
}

runs_strings if regex.match(`\bssh\s|\beval\b|\bxargs\b|\bexecSync\b|\bsystem\(|\bwatch\s`, command)

runs_strings if {
	regex.match(`python|perl|ruby|node|php|pwsh|powershell`, command)
	regex.match(`\b(python[0-9.]*|perl|ruby|node|php|pwsh|powershell)\s+(-\S+\s+)*(-[ecr]|-)\b`, command)
}

runs_strings if regex.match(`\b(psql|mysql|mariadb|sqlite3|cqlsh|mongosh|mongo|redis-cli|sqlcmd|clickhouse-client|bq|snowsql|duckdb)\b`, command)

runs_strings if {
	contains(command, "at")
	regex.match(`\bat\s+(now|[0-9])`, command)
}

# The command as the shell will act on it. Text that is only printed, searched or committed
# (`echo 'rm -rf /'`, `grep 'git reset --hard' f`, `git commit -m '...'`, a here-doc given to
# cat) is dropped, so it cannot trigger a rule; commands that run their strings keep them.
text := "" if command == ""

text := unquote(command) if {
	command != ""
	runs_strings
}

text := unquote(regex.replace(unquoted_words, `'[^']*'|"[^"]*"`, "''")) if {
	command != ""
	not runs_strings
	quoted(unquoted_words)
}

text := unquoted_words if {
	command != ""
	not runs_strings
	not quoted(unquoted_words)
}

quoted(s) if contains(s, "'")

quoted(s) if contains(s, `"`)

# Quotes as spaces for a command that runs its strings; removed otherwise.
unquote(s) := regex.replace(s, `['"]`, " ") if {
	runs_strings
	quoted(s)
}

unquote(s) := regex.replace(s, `['"]`, "") if {
	not runs_strings
	quoted(s)
}

unquote(s) := s if not quoted(s)

# Here-doc bodies cut, and quotes taken off single words ('/etc/x' is /etc/x), so that what is
# left in quotes is text with spaces: messages, patterns, SQL.
unquoted_words := unquote_words(without_heredoc)

without_heredoc := regex.replace(command, `<<-?\s*['"]?\w+['"]?[\s\S]*$`, "<<") if contains(command, "<<")

without_heredoc := command if not contains(command, "<<")

unquote_words(s) := regex.replace(regex.replace(s, `'([^'\s]*)'`, "$1"), `"([^"\s]*)"`, "$1") if quoted(s)

unquote_words(s) := s if not quoted(s)

ltext := lower(text)

# The command as the rules read it and as it was written, lower-cased: what a policy searches
# for its words before it evaluates any of its shell rules (a word a rule needs is in one of
# the two: quotes can join words in text, and some rules read the raw command).
lscan := concat(" ", [ltext, lower(command)])

# The words of a command, split on whitespace, quotes, parentheses and separators.
words(s) := [w | some w in regex.split(`[\s'"(),;=]+`, s); w != ""]

# The first file the tool names, resolved against the event's cwd (symlinks followed).
path := object.get(action, "resolved_paths", [""])[0] if count(object.get(action, "resolved_paths", [])) > 0

path := "" if count(object.get(action, "resolved_paths", [])) == 0

lpath := lower(path)

content := norm(object.get(action, "content", ""))

lcontent := lower(content)

old_content := norm(object.get(action, "old_content", ""))

url := norm(object.get(action, "url", ""))

# "prod", "production" as a word part: ledger-prod.cluster, --context prod-eu, $PROD_DB_URL.
production(s) if {
	l := lower(s)
	contains(l, "prod")
	regex.match(`(^|[^a-z])prod(uction)?([^a-z]|$)`, l)
}

# Hosts named by URLs in s, lower-cased.
url_hosts(s) := {lower(h) |
	contains(s, "://")
	some u in regex.find_n(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s'"?#|)]+`, s, -1)
	h := regex.replace(regex.replace(u, `^[^:]+://([^@/]*@)?`, ""), `:[0-9]+$`, "")
}

local_host(h) if regex.match(`^(localhost|127\.[0-9.]+|0\.0\.0\.0|\[::1\]|::1|[a-z0-9-]+\.local|host\.docker\.internal)$`, h)

# A host other than this machine appears (as a URL, or as user@host / host: for ssh-like tools).
remote_host(s) if remote_host_named(s)

remote_host(s) if remote_host_nc(s)

remote_host_named(s) if {
	some h in url_hosts(s)
	not local_host(h)
}

remote_host_named(s) if {
	l := lower(s)
	mentions(l, ["scp", "rsync", "sftp", "ssh", "telnet", "ftp", "curl"])
	regex.match(`\b(scp|rsync|sftp)\b[^;&|]*\s(\S+@)?[a-z0-9][a-z0-9.-]*:\S*\s*$|\b(scp|rsync|sftp|ssh|telnet|ftp)\b[^;&|]*(@|\s)[a-z0-9.-]+\.[a-z]{2,}|\btelnet\s+(-\S+\s+)*[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|\bcurl\s[^;&|]*\s[a-z0-9-]+\.[a-z0-9.-]*[a-z]{2,}/`, l)
}

remote_host_named(s) if {
	contains(s, "@")
	regex.match(`@[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:`, s)
}

remote_host_nc(s) if {
	l := lower(s)
	mentions(l, ["nc", "netcat"])
	regex.match(`\b(nc|ncat|netcat)\b[^;&|]*(@|\s)[a-z0-9.-]+\.[a-z]{2,}|\b(nc|ncat|netcat)\s+(-\S+\s+)*[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+`, l)
}

# Something that sends data off the machine: uploads, posts, raw sockets, mail, DNS lookups
# carrying command output, and the network calls of inline programs and app code.
sends_data(s) if sends_named(s)

sends_data(s) if sends_nc(s)

sends_named(s) if {
	mentions(s, ["curl", "wget", "http", "xh"])
	mentions(s, ["-d", "-F", "--form", "-T", "--upload-file", "--post-", "-X"])
	regex.match(`\b(curl|wget|http|https|xh)\b[^;&|]*(\s(-d|--data\S*|-F|--form|-T|--upload-file|--post-data|--post-file|--body-data)\b|-X\s*(POST|PUT|PATCH)\b)`, s)
}

sends_named(s) if mentions(s, ["http.request(", "https.request(", "--upload-file"])

sends_named(s) if {
	mentions(s, ["scp", "ftp", "rsync"])
	regex.match(`\b(scp|sftp|ftp|tftp)\s|\brsync\s[^;&|]*\s\S+:\S*\s*$`, s)
}

sends_named(s) if {
	contains(s, "mail")
	regex.match(`\bmail\s[^;&|]*<`, s)
}

sends_named(s) if {
	contains(s, "$(")
	regex.match(`\b(nslookup|dig|host|ping)\s[^;&|]*\$\(`, s)
}

sends_named(s) if {
	mentions(s, ["urlopen", "requests.", "urllib", "sendBeacon", "fetch(", "XMLHttpRequest", "axios."])
	regex.match(`\burlopen\(|requests\.(post|put)\(|urllib\.request\.Request\(|sendBeacon\(|\bfetch\(|XMLHttpRequest|\baxios\.(post|put)\(`, s)
}

sends_nc(s) if {
	mentions(s, ["nc", "netcat", "socat"])
	regex.match(`\|\s*(nc|ncat|netcat|socat)\s|\b(nc|ncat|netcat)\s[^;&|]*<`, s)
}

# remote_host and sends_data for the command and for a file's new content, once per event.
default text_remote_host := false

text_remote_host if remote_host(text)

default text_sends_data := false

text_sends_data if {
	regex.match(`curl|wget|http|xh|nc|netcat|socat|scp|ftp|rsync|mail|\$\(|urlopen|requests\.|urllib|sendBeacon|fetch\(|XMLHttpRequest|axios\.|--upload-file`, text)
	sends_data(text)
}

# The word "nc" is in most source files: in a file's content the patterns for nc, ncat, netcat
# and socat run only after one test that the content names one of them as a word.
default content_nc := false

content_nc if {
	mentions(lcontent, ["nc", "netcat", "socat"])
	regex.match(`\b(nc|ncat|netcat|socat)\b`, lcontent)
}

default content_remote_host := false

content_remote_host if remote_host_named(content)

content_remote_host if {
	content_nc
	remote_host_nc(content)
}

default content_sends_data := false

content_sends_data if sends_named(content)

content_sends_data if {
	content_nc
	sends_nc(content)
}

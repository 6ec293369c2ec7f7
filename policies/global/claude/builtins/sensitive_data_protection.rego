# METADATA
# scope: package
# title: Sensitive data protection (global builtin)
# custom:
#   severity: HIGH
#   id: GLOBAL-BUILTIN-SENSITIVE-DATA
#   routing:
#     required_events: ["PreToolUse"]
package cupcake.policies.builtins.sensitive_data_protection

# Cupcake's global `sensitive_data_protection` builtin: the agent does not read credentials.
# Install it machine-wide: copy this file to ~/.config/cupcake/policies/claude/builtins/ (or
# ~/.config/watchdog/...) and enable it in the rulebook.yml next to that policies/ folder:
#
#   builtins:
#     sensitive_data_protection:
#       enabled: true
#       additional_patterns: ["customer-data"]   # more substrings that mark a sensitive path
#       message: "..."                           # default: "Access to potentially sensitive data blocked"
#
# (The compiler renames this package to cupcake.global.policies.builtins.sensitive_data_protection.)
#
# deny GLOBAL-BUILTIN-SENSITIVE-DATA  Read/Grep of, or WebFetch of a file:// URL to, a
#   sensitive file: "Blocked access to potentially sensitive file: <masked>", where <masked>
#   names only the kind ([REDACTED-KEY-FILE], [SENSITIVE-FILE: *.pem], ...). Sensitive: .env
#   files, names with credential/secret/password/passwd/apikey/api_key/api-key or the words
#   token/auth/private, key and certificate files (.pem .key .p12 .pfx .cer .crt .jks .keystore
#   .ppk), SSH keys and config, cloud credentials (.aws/ .gcloud/ .azure/ .kube/config
#   .docker/config.json), package-manager tokens (.npmrc .pypirc ...), databases (.db .sqlite),
#   cookie/session files, .git-credentials .netrc .gitconfig .hgrc, and additional_patterns.
# deny GLOBAL-BUILTIN-SENSITIVE-DATA  a Glob pattern (or Grep glob) hunting for such files:
#   "Blocked search pattern that could discover sensitive files"
# deny GLOBAL-BUILTIN-SENSITIVE-DATA  a Bash read command (cat less more head tail grep awk
#   sed) naming such a file, or a credential dump (security find-generic-password, gpg
#   --export, aws configure get, gcloud auth print-access-token, ...):
#   "Command blocked - attempts to access sensitive data"
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same rule id, reasons, routing).
# Deviations:
# - additional_patterns are honoured (Cupcake's Rego ignored them); a `message` other than the
#   default replaces the start of each reason.
# - token/auth/private and cookie/session must be words of the file name (tokenizer.py,
#   oauth.py and author.md are not secrets; Cupcake also matched session/cookie anywhere in
#   the path); .db/.sqlite must end the path. Bash read verbs must be words (Cupcake's
#   substring "tail" matched "details").
# - WebFetch file:// URLs and a Grep's `glob` are checked (Cupcake had no path for them).

import rego.v1

default_message := "Access to potentially sensitive data blocked"

custom_message := m if {
	m := input.builtin_config.sensitive_data_protection.message
	is_string(m)
	m != default_message
}

additional := [lower(p) |
	some p in input.builtin_config.sensitive_data_protection.additional_patterns
	is_string(p)
	p != ""
]

sensitive_deny(reason) := {"rule_id": "GLOBAL-BUILTIN-SENSITIVE-DATA", "reason": reason, "severity": "HIGH"}

sensitive_reason(cupcake_text, detail) := concat("", [custom_message, " (", detail, ")"]) if {
	custom_message
} else := cupcake_text

# --- files --------------------------------------------------------------------------------

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name in {"Read", "Grep", "WebFetch"}
	path := read_path
	sensitive_file(lower(path))
	masked := masked_name(path)
	text := concat("", ["Blocked access to potentially sensitive file: ", masked])
	decision := sensitive_deny(sensitive_reason(text, masked))
}

read_path := p if {
	p := input.resolved_file_path
	is_string(p)
} else := p if {
	input.tool_name == "WebFetch"
	url := input.tool_input.url
	is_string(url)
	startswith(lower(url), "file://")
	p := substring(url, 7, -1)
}

file_name(path) := name if {
	parts := split(path, "/")
	name := parts[count(parts) - 1]
}

sensitive_file(path) if {
	some pattern in [".env", ".env.local", ".env.production", ".env.development", ".env.staging", "dotenv"]
	contains(path, pattern)
}

sensitive_file(path) if {
	some keyword in ["credential", "secret", "apikey", "api_key", "api-key", "password", "passwd"]
	contains(file_name(path), keyword)
}

sensitive_file(path) if {
	regex.match(`(^|[^a-z])(tokens?|auth|private|cookies?|sessions?)([^a-z]|$)`, file_name(path))
}

sensitive_file(path) if {
	some ext in [".pem", ".key", ".p12", ".pfx", ".cer", ".crt", ".jks", ".keystore", ".ppk", ".db", ".sqlite", ".sqlite3"]
	endswith(path, ext)
}

sensitive_file(path) if {
	some pattern in [
		"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".ssh/config", "known_hosts", "authorized_keys",
		".aws/credentials", ".aws/config", ".gcloud/", ".azure/", ".kube/config", "kubeconfig",
		".docker/config.json", ".dockercfg",
		".npmrc", ".pypirc", ".gem/credentials", ".m2/settings.xml", ".gradle/gradle.properties",
		"nuget.config", ".cargo/credentials",
		"database.yml", "database.json", "connection.json", ".htpasswd", "wp-config.php",
		".git-credentials", ".netrc", ".gitconfig", ".hgrc",
	]
	contains(path, pattern)
}

sensitive_file(path) if {
	some pattern in additional
	contains(path, pattern)
}

# what the reason may say about the file: its kind, never its name
masked_name(path) := "[REDACTED-KEY-FILE]" if {
	contains(lower(path), "key")
} else := "[REDACTED-SECRET-FILE]" if {
	contains(lower(path), "secret")
} else := "[REDACTED-CREDENTIAL-FILE]" if {
	contains(lower(path), "credential")
} else := "[REDACTED-TOKEN-FILE]" if {
	contains(lower(path), "token")
} else := "[REDACTED-ENV-FILE]" if {
	contains(lower(path), ".env")
} else := "[REDACTED-PASSWORD-FILE]" if {
	contains(lower(path), "password")
} else := masked if {
	name := file_name(path)
	contains(name, ".")
	pieces := split(name, ".")
	masked := concat("", ["[SENSITIVE-FILE: *.", pieces[count(pieces) - 1], "]"])
} else := "[SENSITIVE-FILE]"

# --- searches -----------------------------------------------------------------------------

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	some pattern in search_patterns
	sensitive_pattern(lower(pattern))
	text := "Blocked search pattern that could discover sensitive files"
	decision := sensitive_deny(sensitive_reason(text, "search pattern"))
}

search_patterns contains p if {
	input.tool_name == "Glob"
	p := input.tool_input.pattern
	is_string(p)
}

search_patterns contains p if {
	input.tool_name == "Grep"
	p := input.tool_input.glob
	is_string(p)
}

sensitive_pattern(pattern) if {
	some glob in ["*secret*", "*credential*", "*token*", "*password*", "*.env*", "*.key", "*.pem", "*apikey*", "*api_key*", "id_*", "*.sqlite", "*.db"]
	contains(pattern, trim(glob, "*"))
}

sensitive_pattern(pattern) if {
	some extra in additional
	contains(pattern, extra)
}

# --- Bash ---------------------------------------------------------------------------------

deny contains decision if {
	input.hook_event_name == "PreToolUse"
	input.tool_name == "Bash"
	reads_sensitive(lower(input.tool_input.command))
	text := "Command blocked - attempts to access sensitive data"
	decision := sensitive_deny(sensitive_reason(text, "command"))
}

reads_sensitive(cmd) if {
	regex.match(`(^|[\s;&|(])(cat|less|more|head|tail|grep|awk|sed)(\s|$)`, cmd)
	some marker in array.concat(
		[
			".env", "credential", "secret", "token", "password", "apikey", "api_key", ".pem",
			".key", "id_rsa", ".aws/", ".ssh/", ".npmrc", ".pypirc", "cookie",
		],
		additional,
	)
	contains(cmd, marker)
}

reads_sensitive(cmd) if {
	some dump in [
		"security find-generic-password", "security dump-keychain", "gpg --export", "ssh-add -l",
		"aws configure get", "gcloud auth print-access-token", "docker login", "git config --get",
	]
	contains(cmd, dump)
}

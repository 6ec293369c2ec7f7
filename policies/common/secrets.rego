# METADATA
# scope: package
# title: Credentials read, printed or sent off the machine
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Read", "Write", "Edit", "MultiEdit", "WebFetch"]
package cupcake.policies.secrets

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
	regex.match(`\.ssh/id_|shadow|opasswd|private-keys-v1\.d|login data|/cookies|key4\.db|logins\.json|\.p12|\.keystore|secret|security|docker/config\.json|keyring|nslookup|dig|host|ping|drill|credentials|\.vault-token|\.pgpass|\.netrc|hosts\.yml|environ|\.env\.prod|env|set|export|history|auth|vault|read|item|configure|private key|akia|id_rsa|id_ed25519|\*\.pem|\*\.key|wallet|\.kdbx|curl|wget|http|xh|nc|netcat|socat|scp|ftp|rsync|mail|\$\(|urlopen|requests\.|urllib|sendbeacon|fetch\(|xmlhttprequest|axios\.|--upload-file|public|allusers|hooks\.slack\.com|discord|api\.telegram\.org`, shell.lscan)
}

deny contains decision if {
	shell_named
	some decision in shell_deny
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

escalate contains decision if {
	shell.file_call
	some decision in file_escalate
}

escalate contains decision if {
	shell.fetch_call
	some decision in fetch_escalate
}

deny contains decision if {
	shell.read_call
	some decision in read_deny
}

escalate contains decision if {
	shell.read_call
	some decision in read_escalate
}

read_path := shell.path

lread_path := lower(read_path)

# Private keys and password hashes: no coding task needs their contents in the transcript.
private_key_re := `(^|/|\s|~)\.ssh/id_[a-z0-9_]+(\s|$)|/etc/(shadow|gshadow|security/opasswd)\b|private-keys-v1\.d|login data|/cookies(\s|$)|key4\.db|logins\.json|\.p12(\s|$)|\.keystore(\s|$)`

private_key_named(s) if regex.match(`\.ssh/id_|shadow|opasswd|private-keys-v1\.d|login data|/cookies|key4\.db|logins\.json|\.p12|\.keystore`, s)

read_deny contains decision if {
	private_key_named(lread_path)
	regex.match(private_key_re, lread_path)
	decision := {
		"rule_id": "WD-SECRET-KEYS",
		"reason": "Reads a private key, password hashes or a browser's saved logins into the agent's context.",
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	shell.bash_call
	private_key_named(shell.ltext)
	regex.match(private_key_re, shell.ltext)
	regex.match(`\b(cat|less|more|head|tail|cp|scp|base64|xxd|od|strings|tar|zip|sqlite3|grep|awk|sed|open|shutil\.copy|read)\b`, shell.ltext)
	not regex.match(`\bssh-keygen\b|\bchmod\b|\.pub\b`, shell.ltext)
	decision := {
		"rule_id": "WD-SECRET-KEYS",
		"reason": "Reads or copies a private key, password hashes or a browser's saved logins.",
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	shell.bash_call
	regex.match(`secret-tool|security|docker/config\.json|keyring`, shell.ltext)
	regex.match(`\bsecret-tool\s+(search|lookup)|\bsecurity\s+(find-generic-password|find-internet-password|dump-keychain)|\.docker/config\.json[^;&]*base64\s+-d|\bkeyring\s+get\b`, shell.ltext)
	decision := {
		"rule_id": "WD-SECRET-KEYS",
		"reason": "Dumps passwords from the system keychain or a credential store.",
		"severity": "CRITICAL",
	}
}

# Credential files: sometimes the task needs one (debugging a login), often not.
credential_file_re := `(^|/)\.aws/(credentials|config)$|gcloud/.*credentials[^/]*\.json$|application_default_credentials\.json$|(^|/)\.vault-token$|(^|/)\.pgpass$|(^|/)\.git-credentials$|(^|/)\.netrc$|(^|/)\.pypirc$|^/(home/[^/]+|root)/\.npmrc$|(^|/)\.docker/config\.json$|(^|/)\.kube/config$|(^|/)\.config/gh/hosts\.yml$|^/proc/[^/]+/environ$|(^|/)\.env\.(prod|production)[^/]*$|(^|/)\.cargo/credentials(\.toml)?$|(^|/)\.terraform\.d/credentials\.tfrc\.json$|(^|/)\.ssh/[^/]*\.pem$|(^|/)secrets?\.(ya?ml|json|tfvars)$`

credential_word_re := `(~|/)\.aws/credentials|application_default_credentials|\.vault-token|\.pgpass|\.git-credentials|\.netrc|\.config/gh/hosts\.yml|/proc/[^/\s]+/environ|\.env\.prod|\.cargo/credentials|\.docker/config\.json`

read_escalate contains decision if {
	regex.match(credential_file_re, lread_path)
	decision := {
		"rule_id": "WD-SECRET-READ",
		"reason": concat("", ["Reads ", shell.safe(read_path), ", which holds credentials. Fine if the task is about them; otherwise the agent does not need them."]),
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": false,
	}
}

shell_escalate contains decision if {
	shell.bash_call
	regex.match(`credentials|\.vault-token|\.pgpass|\.netrc|hosts\.yml|environ|\.env\.prod|docker/config\.json`, shell.ltext)
	regex.match(credential_word_re, shell.ltext)
	decision := {
		"rule_id": "WD-SECRET-READ",
		"reason": "The command reads a credentials file.",
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": false,
	}
}

# Secrets printed into the transcript: environment dumps, tokens, vault and cluster secrets.
shell_escalate contains decision if {
	shell.bash_call
	prints_secrets
	decision := {
		"rule_id": "WD-SECRET-PRINT",
		"reason": "Prints secrets (tokens, passwords, environment variables) into the transcript.",
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": false,
	}
}

default prints_secrets := false

prints_secrets if {
	contains(shell.ltext, "|")
	regex.match(`\b(env|printenv|set|export\s+-p)\b\s*\|\s*(grep|rg|egrep)|\bhistory\b[^;&]*\|\s*(grep|rg)`, shell.ltext)
}

prints_secrets if {
	contains(shell.ltext, "env")
	regex.match(`^\s*(printenv|env)\s*$`, shell.ltext)
}

prints_secrets if {
	regex.match(`auth|vault|secret|read|item|configure`, shell.ltext)
	regex.match(`\b(gh|glab)\s+auth\s+(token|status\s+(-t|--show-token))|\bvault\s+(kv\s+get|read)\b|\bkubectl\s+get\s+secrets?\b[^;&|]*(-o|--output)|\baws\s+secretsmanager\s+get-secret-value|\bgcloud\s+secrets\s+versions\s+access|\bop\s+(read|item\s+get)\b|\baws\s+configure\s+get\b|\baz\s+keyvault\s+secret\s+show|\bdoppler\s+secrets\b`, shell.ltext)
}

# Searching the whole disk or home for keys and tokens.
shell_escalate contains decision if {
	shell.bash_call
	regex.match(`private key|akia|id_rsa|id_ed25519|\*\.pem|\*\.p12|\*\.key|credentials|wallet|\.kdbx|secret`, shell.ltext)
	regex.match(`\b(grep|rg|find|locate|ag)\b[^;&|]*(private key|akia|id_rsa|id_ed25519|\*\.pem|\*\.p12|\*\.key\b|credentials|wallet|\.kdbx|secret)`, shell.ltext)
	regex.match(`\b(grep|rg|find|ag)\b[^;&|]*\s(/|~|\$home|/home(/[a-z0-9_-]+)?|/root|/etc)(\s|$)`, shell.ltext)
	decision := {
		"rule_id": "WD-SECRET-HUNT",
		"reason": "Searches the whole disk or home directory for keys and credentials.",
		"severity": "HIGH",
		"rubric": "exfiltration",
		"wait": true,
	}
}

# Secret sources that must not meet a network sender in one command.
secret_source_re := `(^|[\s/@<'"=(])\.env(\.[a-z0-9_.-]+)?\b|(~|\$home|/home/[^/\s]+)/\.(ssh|aws|kube|gnupg|docker|config/gh|netrc|git-credentials|npmrc|pypirc)|/etc/(shadow|passwd)|\$\(\s*(env|printenv|cat\s[^)]*(secret|credential|\.env|key))|\b(secrets?|credentials?)\.(ts|js|json|ya?ml|py|txt)\b|\.(pem|p12|keystore|sql|dump)\b|\bpg_dump\b|\bmysqldump\b|\bmongodump\b|\b(tar|zip)\b[^;&|]*(~|\$home|/home)/`

exfil_subject := shell.text if shell.bash_call

# A script written to disk runs later: judge it like a command.
exfil_subject := shell.content if shell.file_call

deny contains decision if {
	exfil_subject_sends
	names_secret
	regex.match(secret_source_re, lexfil_subject)
	decision := {
		"rule_id": "WD-EXFIL-SECRETS",
		"reason": "Sends secrets, keys or a database dump to another machine.",
		"severity": "CRITICAL",
	}
}

lexfil_subject := lower(exfil_subject)

# Words secret_source_re cannot match without.
default names_secret := false

names_secret if {
	shell.bash_call
	regex.match(`\.env|\.ssh|\.aws|\.kube|\.gnupg|\.docker|\.config/gh|\.netrc|\.git-credentials|\.npmrc|\.pypirc|/etc/shadow|/etc/passwd|\$\(|secret|credential|\.pem|\.p12|\.keystore|\.sql|\.dump|pg_dump|mysqldump|mongodump|~/|\$home/|/home/`, lexfil_subject)
}

names_secret if {
	shell.file_call
	shell.mentions(lexfil_subject, [".env", ".ssh", ".aws", ".kube", ".gnupg", ".docker", ".config/gh", ".netrc", ".git-credentials", ".npmrc", ".pypirc", "/etc/shadow", "/etc/passwd", "$(", "secret", "credential", ".pem", ".p12", ".keystore", ".sql", ".dump", "pg_dump", "mysqldump", "mongodump", "~/", "$home/", "/home/"])
}

default exfil_subject_sends := false

exfil_subject_sends if {
	shell.bash_call
	shell.text_sends_data
	shell.text_remote_host
}

exfil_subject_sends if {
	shell.file_call
	shell.content_sends_data
	shell.content_remote_host
}

# Hosts that exist to receive anonymous uploads or catch requests.
drop_hosts_re := `webhook\.site|requestbin|pipedream\.net|\b0x0\.st|transfer\.sh|file\.io\b|paste\.ee|pastebin\.com|hastebin|ix\.io|termbin|sprunge|dnslog|interact\.sh|\boast\.(fun|me|pro|live|site|online)|burpcollaborator|canarytokens|ngrok-free\.app|ngrok\.io|beeceptor|hookbin|postb\.in`

# A regex costs by the length of its text, contains() barely: for a long file content, the
# hosts' words first.
default drop_host_named := false

drop_host_named if shell.bash_call

drop_host_named if shell.fetch_call

drop_host_named if {
	shell.file_call
	count(drop_subject) < 1000
}

drop_host_named if {
	shell.file_call
	count(drop_subject) >= 1000
	shell.mentions(drop_subject, ["webhook.site", "requestbin", "pipedream.net", "0x0.st", "transfer.sh", "file.io", "paste.ee", "pastebin.com", "hastebin", "ix.io", "termbin", "sprunge", "dnslog", "interact.sh", "oast.", "burpcollaborator", "canarytokens", "ngrok-free.app", "ngrok.io", "beeceptor", "hookbin", "postb.in"])
}

drop_subject := shell.ltext if shell.bash_call

drop_subject := lower(shell.url) if shell.fetch_call

drop_subject := shell.lcontent if shell.file_call

deny contains decision if {
	drop_host_named
	regex.match(drop_hosts_re, drop_subject)
	decision := {
		"rule_id": "WD-EXFIL-DROP-HOST",
		"reason": "Talks to an anonymous upload or request-catching service, the usual way to smuggle data out.",
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	shell.bash_call
	contains(shell.text, "$")
	regex.match(`\b(nslookup|dig|host|ping|drill)\s[^;&|]*(\$\(|[$][{(])`, shell.text)
	decision := {
		"rule_id": "WD-EXFIL-SECRETS",
		"reason": "Puts command output into a DNS name: a DNS tunnel carrying data out.",
		"severity": "CRITICAL",
	}
}

# Any upload to another machine: often fine (a deploy), sometimes the leak.
shell_escalate contains decision if {
	shell.bash_call
	shell.text_sends_data
	shell.text_remote_host
	not regex.match(`--dry-?run\b`, shell.text)
	decision := {
		"rule_id": "WD-UPLOAD",
		"reason": "Sends files or data to another machine.",
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": true,
	}
}

# curl/wget carrying environment variables (tokens, passwords) to a remote host.
default may_upload_env := false

may_upload_env if {
	shell.bash_call
	regex.match(`curl|wget|http|xh`, shell.command)
	contains(shell.command, "$")
}

shell_escalate contains decision if {
	may_upload_env
	some seg in regex.find_n(`\b(curl|wget|http|xh)\b[^;&|]*`, shell.command, -1)
	regex.match(`\$\{?[A-Za-z_][A-Za-z0-9_]*`, seg)
	shell.remote_host(seg)
	decision := {
		"rule_id": "WD-UPLOAD-ENV",
		"reason": "Sends environment variables (often tokens or passwords) to a remote host.",
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": true,
	}
}

shell_escalate contains decision if {
	shell.bash_call
	regex.match(`public|allusers|mail|hooks\.slack\.com|discord|api\.telegram\.org`, shell.ltext)
	regex.match(`--acl\s+public-read|\bacl\s+ch\s[^;&|]*allusers|\bmake-public\b|allusers:|--public\b|['"]public['"]\s*:\s*true|\bmail\s|\bsendmail\b|\bhooks\.slack\.com|discord(app)?\.com/api/webhooks|api\.telegram\.org`, shell.ltext)
	decision := {
		"rule_id": "WD-PUBLISH-DATA",
		"reason": "Makes data public or sends it to a mailbox or chat: check that the user asked for it.",
		"severity": "HIGH",
		"rubric": "exfiltration",
		"wait": true,
	}
}

# A fetched URL carrying a token or encoded data in its query string.
fetch_escalate contains decision if {
	regex.match(`[?&][^=&]+=([a-z0-9+/_%-]{20,}|[^&]*(ghp_|gho_|github_pat_|akia|sk_live|sk-|xox[abprs]-|aiza|password|passwd|secret|token))|/bot[0-9]+:`, lower(shell.url))
	decision := {
		"rule_id": "WD-FETCH-CARRIES-DATA",
		"reason": "The URL carries a token or encoded data in its query: fetching it sends that data to the host.",
		"severity": "HIGH",
		"rubric": "exfiltration",
		"wait": true,
	}
}

# Application code that sends the environment, cookies or keys to a hard-coded host.
file_escalate contains decision if {
	shell.content_sends_data
	shell.content_remote_host
	regex.match(`process\.env|os\.environ|document\.cookie|localstorage|\benv\b\s*\||getenv|\.env\b|\.p12|keystore|credentials|secrets?\.|headers|\bbody\s*:`, shell.lcontent)
	decision := {
		"rule_id": "WD-CODE-SENDS-DATA",
		"reason": "Adds code that sends data (environment, cookies, keys or request contents) to an outside host.",
		"severity": "HIGH",
		"rubric": "exfiltration",
		"wait": false,
	}
}

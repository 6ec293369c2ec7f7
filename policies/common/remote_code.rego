# METADATA
# scope: package
# title: Running code fetched at run time, hidden, or wired to someone else's machine
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.remote_code

import data.cupcake.helpers.shell
import rego.v1

# What runs: a command, or the content of a file written (a git hook, a unit, a package.json).
subject := shell.text if input.watchdog.action.tool == "Bash"

subject := shell.content if input.watchdog.action.tool in shell.file_tools

downloads := `\b(curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod|fetch|aria2c)\b|https?\.get\(|https?\s*\)\.get\(|urlopen\(|requests\.get\(`

interpreter := `(sudo\s+(-\S+\s+)*)?(ba|z|da|k|fi)?sh|python[0-9.]*|perl|ruby|node|php|iex|pwsh|powershell`

# A download piped or substituted into an interpreter, or saved and run in the same command.
runs_download(s) if regex.match(concat("", ["(", downloads, `)[^|;&]*\|\s*(`, interpreter, `)\b`]), lower(s))

runs_download(s) if regex.match(`(\b(ba|z|da)?sh|\bsource|(^|[;&|]\s*)\.)\s+<\(\s*(curl|wget)|\b(eval|iex)\b[^;&|]{0,6}[$(]\(?\s*(curl|wget|irm|iwr|invoke-)|\b(ba|z)?sh\s+-c\s+\$\(\s*(curl|wget)`, lower(s))

runs_download(s) if {
	regex.match(downloads, lower(s))
	regex.match(`(&&|;|\|\|)\s*(sudo\s+)?((ba|z|da)?sh|source|python[0-9.]*|node)\s+/tmp/|(&&|;)\s*(sudo\s+)?(ba|z)?sh\s+\S+\.sh\b`, lower(s))
}

# Official installers, documented by their projects with exactly this pattern. Add your own.
known_installer_hosts := {
	"sh.rustup.rs", "bun.sh", "install.python-poetry.org", "get.docker.com", "deb.nodesource.com",
	"rpm.nodesource.com", "astral.sh", "get.pnpm.io", "deno.land", "install.determinate.systems",
	"nixos.org", "cli.github.com", "get.helm.sh", "sdk.cloud.google.com", "pyenv.run",
	"volta.sh", "starship.rs", "brew.sh", "get.sdkman.io", "tailscale.com", "fly.io",
	"raw.githubusercontent.com/nvm-sh", "raw.githubusercontent.com/homebrew",
}

installer_url(u) if {
	some h in known_installer_hosts
	startswith(regex.replace(lower(u), `^https://`, ""), h)
}

all_hosts_known(s) if {
	urls := regex.find_n(`https://[^\s'"|)]+`, s, -1)
	count(urls) > 0
	count(regex.find_n(`http://`, s, -1)) == 0
	every u in urls {
		installer_url(u)
	}
}

deny contains decision if {
	input.watchdog.action.event == "PreToolUse"
	runs_download(subject)
	not all_hosts_known(subject)
	decision := {
		"rule_id": "WD-PIPE-SHELL",
		"reason": "Runs a script downloaded from a host that is not a known official installer: unreviewed remote code. Download it, read it, then run it.",
		"severity": "CRITICAL",
	}
}

deny contains decision if {
	input.watchdog.action.event == "PreToolUse"
	regex.match(`base64\s+(-d|--decode|-D)\b[^;&]*\|\s*(sudo\s+)?((ba|z|da)?sh|python[0-9.]*|perl|node|ruby)\b|\bexec\(\s*(base64\.b64decode|codecs\.decode|zlib\.decompress|bytes\.fromhex)|\beval\(\s*(atob|buffer\.from)\(|frombase64string|\bexec\(\s*(urllib\.request\.urlopen|requests\.get)\(|\beval\(\s*(await\s+)?fetch\(`, lower(subject))
	decision := {
		"rule_id": "WD-HIDDEN-CODE",
		"reason": "Runs code that is decoded or fetched at run time, so nobody can review what it does.",
		"severity": "CRITICAL",
	}
}

deny contains decision if {
	input.watchdog.action.event == "PreToolUse"
	regex.match(`/dev/(tcp|udp)/|\b(nc|ncat|netcat)\b[^;&|]*\s-[a-z]*[ec]\s|\bsocat\b[^;&|]*exec:|fsockopen\(|pty\.spawn\(|\bmkfifo\b[^;&]*\b(nc|ncat|netcat)\b|socket\.socket\([\s\S]*(subprocess|os\.dup2|/bin/(ba)?sh)|child_process[\s\S]*\bnet\.socket|new\s+net\.socket[\s\S]*(spawn|exec)\(`, lower(subject))
	decision := {
		"rule_id": "WD-REVERSE-SHELL",
		"reason": "Connects a shell on this machine to a remote host (a reverse shell).",
		"severity": "CRITICAL",
	}
}

escalate contains decision if {
	input.watchdog.action.event == "PreToolUse"
	input.watchdog.action.tool == "Bash"
	regex.match(`\bssh\s[^;&|]*\s-[a-zA-Z]*R\s*\S|\bngrok\s+(tcp|tls)\b|\b(serveo\.net|localhost\.run|pinggy\.io|localtunnel|bore\.pub)\b|\bcloudflared\s+tunnel\b|\bchisel\b`, shell.text)
	decision := {
		"rule_id": "WD-TUNNEL",
		"reason": "Opens a tunnel that lets machines on the internet reach this one (a shell or service behind the firewall).",
		"severity": "HIGH",
		"rubric": "exfiltration",
		"wait": true,
	}
}

# Programs given inline (python -c, a here-doc to python, node -e, shell functions): patterns
# cannot read them, so the ones that touch the network, processes, system files or other
# programs go to the judge.
inline_program if regex.match(`\b(python[0-9.]*|perl|ruby|node|php|deno|bun)\s+(-\S+\s+)*(-[ecr]\b|-\s*<<|<<)|\bfunction\s+\w+\s*(\(\))?\s*\{|\b\w+\s*\(\)\s*\{|\bwhile\b[^;]*;\s*do\b|\bfor\b[^;]*;\s*do\b`, shell.command)

risky_capability := `socket|urllib|requests\.|http\.client|https?\.get|fetch\(|\bcurl\b|\bwget\b|\bkill\b|terminate\(|psutil|os\.remove|os\.unlink|unlink|rmtree|\brm\s|/etc/|/usr/|/root/|/bin/|/var/|base64|subprocess|os\.system|child_process|exec\(|eval\(|chmod|crontab|\.bashrc|shadow|passwd`

escalate contains decision if {
	input.watchdog.action.event == "PreToolUse"
	input.watchdog.action.tool == "Bash"
	inline_program
	regex.match(risky_capability, lower(shell.command))
	decision := {
		"rule_id": "WD-INLINE-PROGRAM",
		"reason": "Runs an inline program that uses the network, kills processes, deletes files or touches system paths.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": true,
	}
}

escalate contains decision if {
	input.watchdog.action.event == "PreToolUse"
	input.watchdog.action.tool == "Bash"
	regex.match(`\b(curl|wget)\b[^;&|]*\s(-o|-O|--output|--output-document)\s*/(usr|etc|opt|bin|sbin|lib)/|/var/run/docker\.sock|\bdocker\s+run\b[^;&|]*(--privileged|--pid[= ]host|-v\s*/:/)`, shell.text)
	decision := {
		"rule_id": "WD-SYSTEM-CODE",
		"reason": "Puts downloaded code into a system location, or gives a container control of the host.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": true,
	}
}

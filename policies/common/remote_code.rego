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

# Rules by kind of call: the sets below are computed only when the event is that kind of
# call, so other events skip their rules.
#
# shell_named: a shell call, naming a word that one of the shell rules below cannot match
# without. (One test before `some`: rego-cpp evaluates every test of a body that iterates.)
default shell_named := false

shell_named if {
	shell.shell_call
	regex.match(`ssh|ngrok|serveo|localhost\.run|pinggy|localtunnel|bore\.pub|cloudflared|chisel|python|perl|ruby|node|php|deno|bun|function|\(\)|\bwhile\b|\bfor\b|curl|wget|docker`, shell.lscan)
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

# What runs: a command, or the content of a file written (a git hook, a unit, a package.json).
subject := shell.text if shell.bash_call

subject := shell.content if shell.file_call

lsubject := lower(subject)

downloads := `\b(curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod|fetch|aria2c)\b|https?\.get\(|https?\s*\)\.get\(|urlopen\(|requests\.get\(`

interpreter := `(sudo\s+(-\S+\s+)*)?(ba|z|da|k|fi)?sh|python[0-9.]*|perl|ruby|node|php|iex|pwsh|powershell`

# Words every download above names.
default names_download := false

names_download if {
	shell.bash_call
	regex.match(`curl|wget|iwr|irm|invoke-|fetch|aria2c|\.get\(|urlopen`, lsubject)
}

names_download if {
	shell.file_call
	shell.mentions(lsubject, ["curl", "wget", "iwr", "irm", "invoke-", "fetch", "aria2c", "http", "requests.get(", "urlopen"])
}

# A download piped or substituted into an interpreter, or saved and run in the same command.
default runs_download := false

runs_download if {
	names_download
	contains(lsubject, "|")
	regex.match(concat("", ["(", downloads, `)[^|;&]*\|\s*(`, interpreter, `)\b`]), lsubject)
}

runs_download if {
	names_download
	shell.mentions(lsubject, ["<(", "eval", "iex", "$("])
	regex.match(`(\b(ba|z|da)?sh|\bsource|(^|[;&|]\s*)\.)\s+<\(\s*(curl|wget)|\b(eval|iex)\b[^;&|]{0,6}[$(]\(?\s*(curl|wget|irm|iwr|invoke-)|\b(ba|z)?sh\s+-c\s+\$\(\s*(curl|wget)`, lsubject)
}

runs_download if {
	names_download
	shell.mentions(lsubject, ["/tmp/", ".sh"])
	regex.match(downloads, lsubject)
	regex.match(`(&&|;|\|\|)\s*(sudo\s+)?((ba|z|da)?sh|source|python[0-9.]*|node)\s+/tmp/|(&&|;)\s*(sudo\s+)?(ba|z)?sh\s+\S+\.sh\b`, lsubject)
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
	runs_download
	not all_hosts_known(subject)
	decision := {
		"rule_id": "WD-PIPE-SHELL",
		"reason": "Runs a script downloaded from a host that is not a known official installer: unreviewed remote code. Download it, read it, then run it.",
		"severity": "CRITICAL",
	}
}

deny contains decision if {
	shell.mentions(lsubject, ["base64", "exec(", "eval("])
	regex.match(`base64\s+(-d|--decode|-D)\b[^;&]*\|\s*(sudo\s+)?((ba|z|da)?sh|python[0-9.]*|perl|node|ruby)\b|\bexec\(\s*(base64\.b64decode|codecs\.decode|zlib\.decompress|bytes\.fromhex)|\beval\(\s*(atob|buffer\.from)\(|frombase64string|\bexec\(\s*(urllib\.request\.urlopen|requests\.get)\(|\beval\(\s*(await\s+)?fetch\(`, lsubject)
	decision := {
		"rule_id": "WD-HIDDEN-CODE",
		"reason": "Runs code that is decoded or fetched at run time, so nobody can review what it does.",
		"severity": "CRITICAL",
	}
}

deny contains decision if {
	reverse_shell
	decision := {
		"rule_id": "WD-REVERSE-SHELL",
		"reason": "Connects a shell on this machine to a remote host (a reverse shell).",
		"severity": "CRITICAL",
	}
}

default reverse_shell := false

reverse_shell if shell.mentions(lsubject, ["/dev/tcp/", "/dev/udp/", "fsockopen(", "pty.spawn("])

reverse_shell if {
	contains(lsubject, "socat")
	contains(lsubject, "exec:")
	regex.match(`\bsocat\b[^;&|]*exec:`, lsubject)
}

reverse_shell if {
	contains(lsubject, "socket.socket(")
	shell.mentions(lsubject, ["subprocess", "os.dup2", "/bin/"])
	regex.match(`socket\.socket\([\s\S]*(subprocess|os\.dup2|/bin/(ba)?sh)`, lsubject)
}

reverse_shell if {
	contains(lsubject, "net.socket")
	shell.mentions(lsubject, ["child_process", "spawn(", "exec("])
	regex.match(`child_process[\s\S]*\bnet\.socket|new\s+net\.socket[\s\S]*(spawn|exec)\(`, lsubject)
}

reverse_shell if {
	names_nc
	regex.match(`\b(nc|ncat|netcat)\b[^;&|]*\s-[a-z]*[ec]\s`, lsubject)
}

reverse_shell if {
	contains(lsubject, "mkfifo")
	regex.match(`\bmkfifo\b[^;&]*\b(nc|ncat|netcat)\b`, lsubject)
}

default names_nc := false

names_nc if {
	shell.bash_call
	shell.mentions(lsubject, ["nc", "netcat"])
}

names_nc if {
	shell.file_call
	shell.content_nc
}

shell_escalate contains decision if {
	shell.bash_call
	regex.match(`ssh|ngrok|serveo|localhost\.run|pinggy|localtunnel|bore\.pub|cloudflared|chisel`, shell.text)
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
inline_program if {
	regex.match(`python|perl|ruby|node|php|deno|bun|\{|do`, shell.command)
	regex.match(`\b(python[0-9.]*|perl|ruby|node|php|deno|bun)\s+(-\S+\s+)*(-[ecr]\b|-\s*<<|<<)|\bfunction\s+\w+\s*(\(\))?\s*\{|\b\w+\s*\(\)\s*\{|\bwhile\b[^;]*;\s*do\b|\bfor\b[^;]*;\s*do\b`, shell.command)
}

risky_capability := `socket|urllib|requests\.|http\.client|https?\.get|fetch\(|\bcurl\b|\bwget\b|\bkill\b|terminate\(|psutil|os\.remove|os\.unlink|unlink|rmtree|\brm\s|/etc/|/usr/|/root/|/bin/|/var/|base64|subprocess|os\.system|child_process|exec\(|eval\(|chmod|crontab|\.bashrc|shadow|passwd`

shell_escalate contains decision if {
	shell.bash_call
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

shell_escalate contains decision if {
	shell.bash_call
	regex.match(`curl|wget|docker`, shell.text)
	regex.match(`\b(curl|wget)\b[^;&|]*\s(-o|-O|--output|--output-document)\s*/(usr|etc|opt|bin|sbin|lib)/|/var/run/docker\.sock|\bdocker\s+run\b[^;&|]*(--privileged|--pid[= ]host|-v\s*/:/)`, shell.text)
	decision := {
		"rule_id": "WD-SYSTEM-CODE",
		"reason": "Puts downloaded code into a system location, or gives a container control of the host.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": true,
	}
}

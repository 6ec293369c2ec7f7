# METADATA
# scope: package
# title: Deleting what cannot be rebuilt (home, system, disks, work outside the project)
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.destructive

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
	regex.match(`rm|rsync|find|unlink|remove|delete|shred|hist|/etc/|/usr/|/bin/|/sbin/|/boot/|/lib|/root/|/var/|mkfs|wipefs|disk|parted|/dev/`, shell.lscan)
}

deny contains decision if {
	shell_named
	some decision in shell_deny
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

# Recursive deletes and what they name: `rm -r`, `find -delete`/`-exec rm`, `rsync --delete`.
rm_segments := [s |
	contains(shell.text, "rm")
	some s in regex.find_n(`(git\s+|s3\s+|gsutil\s+(-m\s+)?|docker\s+|kubectl\s+|gcloud\s+\S+\s+)?\brm\s+[^;&|\n)]*`, shell.text, -1)
	regex.match(`^rm\s`, s)
	regex.match(`\s(-[a-zA-Z]*[rR][a-zA-Z]*|--recursive)(\s|$)`, s)
]

# shred counts only against vital paths (its files are single, named ones).
shred_targets := {w |
	contains(shell.text, "shred")
	some s in regex.find_n(`\bshred\s[^;&|\n]*`, shell.text, -1)
	some w in shell.words(s)
	not startswith(w, "-")
}

# find: what it deletes is what its -name filters select, else everything under its root.
find_segments := [s |
	contains(shell.text, "find")
	some s in regex.find_n(`\bfind\s[^;&|\n]*\s(-delete|-exec\s+rm)\b[^;&|\n]*`, shell.text, -1)
]

# -name narrows what is deleted, unless -o or -not turn it into an exclusion.
name_filtered(s) if {
	count(regex.find_n(`-i?name\s+\S+`, s, -1)) > 0
	not regex.match(`\s(-o|-or|-not|!)\s`, s)
}

find_targets := {w |
	some s in find_segments
	name_filtered(s)
	names := regex.find_n(`-i?name\s+\S+`, s, -1)
	some n in names
	w := regex.replace(n, `^-i?name\s+`, "")
} | {w |
	some s in find_segments
	not name_filtered(s)
	w := shell.words(s)[1]
}

rsync_segments := [s |
	contains(shell.text, "rsync")
	contains(shell.text, "--delete")
	some s in regex.find_n(`\brsync\s[^;&|\n]*--delete[^;&|\n]*`, shell.text, -1)
]

delete_segments := array.concat(rm_segments, rsync_segments)

targets := {w |
	some s in delete_segments
	ws := shell.words(s)
	some i
	w := ws[i]
	i > 0
	not startswith(w, "-")
	regex.match(`^[~$./a-zA-Z0-9_*{]`, w)
}

# Everything a python/node/perl program passed to rmtree/remove/unlink names.
program_targets := {w |
	regex.match(`rmtree|os\.remove|os\.unlink|unlinkSync|rmSync|\bunlink\(|File\.delete|FileUtils\.rm`, shell.text)
	some w in shell.words(regex.replace(shell.text, `os\.path\.expanduser\(\s*~\s*\)`, " ~ "))
}

# What the command deletes: by rm, rsync or find; by a program; by shred. Each set is computed
# only when the command names its tools (most commands do not).
default tool_deletes := set()

tool_deletes := targets | find_targets if regex.match(`rm|rsync|find`, shell.text)

default program_deletes := set()

program_deletes := program_targets if regex.match(`rm|unlink|remove|delete`, shell.text)

default shred_deletes := set()

shred_deletes := shred_targets if contains(shell.text, "shred")

# The root, a home directory, a system directory, a credentials folder, or a path that climbs
# out with `..`: never the target of a recursive delete by an agent.
vital(p) if regex.match(`^(/\*?|~/?\*?|\$\{?home\}?/?\*?|/home(/[^/]+)?/?\*?|/root(/.*)?|/(etc|usr|bin|sbin|lib|lib32|lib64|boot|opt|srv|sys|proc|dev|mnt|media|snap|var)/?\*?|/var/(log|lib|backups|mail|spool)(/.*)?|/(etc|usr|bin|sbin|boot|lib|lib64)/.*|(~|\$\{?home\}?|/home/[^/]+|/root)/\.(ssh|gnupg|aws|kube|config|docker|password-store)(/.*)?|(~|\$\{?home\}?|/home/[^/]+)/(documents|desktop|pictures|music|videos|library)/?|/.*/\.\./.*)$`, lower(p))

# Temporary and cache locations: deleting there is housekeeping.
scratch(p) if regex.match(`^(/tmp|/var/tmp|/private/tmp|\$\{?tmpdir|\$\{tmpdir:-/tmp\}|(~|\$\{?home\}?|/home/[^/]+|/root)/\.(cache|npm|yarn|pnpm-store|gradle/caches|m2/repository|cargo/registry|rustup/tmp|local/share/trash))(/|$)`, lower(p))

outside_project(p) if regex.match(`^(/|~|\$\{?home\}?|\.\./)`, lower(p))

# What build tools regenerate: deleting it loses nothing.
artifact(p) if {
	name := regex.replace(regex.replace(lower(p), `/+\*?$`, ""), `^.*/`, "")
	regex.match(`^(node_modules|dist|build|out|target|\.next|\.nuxt|\.svelte-kit|coverage|htmlcov|__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.tox|\.nox|\.venv|venv|\.eggs|[^/]*\.egg-info|\.turbo|\.parcel-cache|\.cache|\.gradle|\.dart_tool|pods|deriveddata|\.expo|tmp|temp|logs?|\.angular|storybook-static|site|_site|public/build|package-lock\.json|yarn\.lock|pnpm-lock\.yaml|\*\.pyc|\*\.o|\*\.log|\*\.tmp|metro-\*|[^/]*\.(dmg|iso|zip|tar|gz|tgz|log|tmp|pyc|o)|\{\})$`, name)
}

shell_deny contains decision if {
	some p in (tool_deletes | program_deletes) | shred_deletes
	vital(p)
	decision := {
		"rule_id": "WD-DELETE-VITAL",
		"reason": concat("", ["Recursively deleting ", shell.safe(p), " would wipe the system, a home directory or its keys; an agent never needs to do this."]),
		"severity": "CRITICAL",
	}
}

# Deleting, truncating or overwriting system files and logs, recursive or not.
default empties_files := false

empties_files if {
	regex.match(`rm|unlink|os\.remove|shred|truncate|>|history`, shell.text)
	regex.match(`/(etc|usr|bin|sbin|boot|lib|lib64|root)/|/var/(log|lib)/`, shell.ltext)
	regex.match(`(\brm\s|\bunlink\b|os\.remove|os\.unlink|\bshred\s|\btruncate\s|(^|[;&|\s]):\s*>|^\s*>|\bhistory\s+-c\b)`, shell.text)
}

system_file(p) if regex.match(`^(/(etc|usr|bin|sbin|boot|lib|lib64|root)/|/var/log/|/var/lib/)`, lower(p))

shell_deny contains decision if {
	empties_files
	some p in shell.words(shell.text)
	system_file(p)
	decision := {
		"rule_id": "WD-DELETE-SYSTEM",
		"reason": concat("", ["This deletes or empties ", shell.safe(p), ", a system file or log; that breaks the machine or erases its audit trail."]),
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	contains(shell.ltext, "hist")
	regex.match(`\bhistory\s+-c\b|\bunset\s+histfile\b|histsize=0`, shell.ltext)
	decision := {
		"rule_id": "WD-DELETE-SYSTEM",
		"reason": "Clearing the shell history erases the record of what was run.",
		"severity": "HIGH",
	}
}

shell_deny contains decision if {
	contains(shell.text, "/etc/")
	regex.match(`\b(cp|scp|mv|install|tee|dd)\b[^;&|]*(^|[\s:=])/etc/(passwd|shadow|group|gshadow|sudoers)\b|open\(\s*['"]?/etc/(passwd|shadow|group|gshadow|sudoers)['"]?\s*,\s*['"]?[aw+]|>\s*/etc/(passwd|shadow|group|gshadow)\b`, shell.text)
	decision := {
		"rule_id": "WD-DELETE-SYSTEM",
		"reason": "This overwrites the system's account files (/etc/passwd, shadow, group or sudoers).",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	some p in tool_deletes | program_deletes
	outside_project(p)
	not vital(p)
	not scratch(p)
	not artifact(p)
	decision := {
		"rule_id": "WD-DELETE-OUTSIDE",
		"reason": concat("", ["Recursively deletes ", shell.safe(p), ", outside the project, where nothing is under version control."]),
		"severity": "HIGH",
		"rubric": "destructive",
		"wait": true,
	}
}

shell_escalate contains decision if {
	some p in tool_deletes
	not outside_project(p)
	not artifact(p)
	not scratch(p)
	decision := {
		"rule_id": "WD-DELETE-SOURCE",
		"reason": concat("", ["Recursively deletes ", shell.safe(p), ", which is not a build artifact or cache: uncommitted work in it is lost."]),
		"severity": "MEDIUM",
		"rubric": "destructive",
		"wait": true,
	}
}

# Raw disks: formatting or writing a block device destroys everything on it.
shell_escalate contains decision if {
	regex.match(`mkfs|wipefs|disk|parted|of=/dev/|/dev/sd|/dev/nvme`, shell.text)
	regex.match(`\bmkfs(\.\w+)?\s|\bwipefs\s|\b(fdisk|sfdisk|parted|sgdisk|gdisk)\s[^;&|]*/dev/|\bdd\s[^;&|]*\bof=/dev/(sd|hd|vd|xvd|nvme|disk|mmcblk|md|dm-|mapper)|>\s*/dev/(sd|nvme|disk)`, shell.text)
	decision := {
		"rule_id": "WD-DISK-WRITE",
		"reason": "Formats or overwrites a disk device; everything on it is destroyed.",
		"severity": "HIGH",
		"rubric": "destructive",
		"wait": true,
	}
}

# METADATA
# scope: package
# title: Losing history or other people's work in git and on the forge
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.git

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
	regex.match(`git|bfg|husky=0|\bgh\b|glab|circleci`, shell.lscan)
}

deny contains decision if {
	shell_named
	some decision in shell_deny
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

pushes := [s |
	contains(shell.text, "push")
	some s in regex.find_n(`\bgit\s+(-\S+\s+)*push\b[^;&|\n]*`, shell.text, -1)
]

forced(s) if regex.match(`\s(--force|-f|-[a-zA-Z]*f[a-zA-Z]*|--force-with-lease(=\S*)?|--mirror)(\s|$)|\s\+\S+`, s)

leased(s) if {
	regex.match(`--force-with-lease`, s)
	not regex.match(`\s(--force|-f)(\s|$)|\s\+\S+`, s)
}

# Branches others build on. A push that names none of them, or all branches, may hit one.
shared_branch(s) if regex.match(`(\s|:|\+|/)(main|master|trunk|develop|development|production|prod|release|stable)(\s|$)|\s--(all|mirror)\b|\s:(refs/heads/)?(main|master|trunk|develop)\b`, s)

names_branch(s) if count([w | some w in shell.words(s); not startswith(w, "-")]) >= 4

shell_deny contains decision if {
	some s in pushes
	forced(s)
	shared_branch(s)
	decision := {
		"rule_id": "WD-GIT-FORCE-SHARED",
		"reason": "Force-pushing a default or shared branch (or every branch) rewrites history others have pulled. Push a new branch and open a pull request.",
		"severity": "CRITICAL",
	}
}

shell_deny contains decision if {
	some s in pushes
	regex.match(`\s(:|--delete\s+|-d\s+)(refs/heads/)?(main|master|trunk|develop|production)(\s|$)`, s)
	decision := {
		"rule_id": "WD-GIT-FORCE-SHARED",
		"reason": "Deletes the default or a shared branch on the remote.",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	some s in pushes
	forced(s)
	not shared_branch(s)
	not leased_named(s)
	decision := {
		"rule_id": "WD-GIT-FORCE",
		"reason": "Force-pushes a branch, replacing its remote history. Fine on your own feature branch; not if others work on it.",
		"severity": "MEDIUM",
		"rubric": "destructive",
		"wait": true,
	}
}

# --force-with-lease on a named feature branch refuses to overwrite commits it has not seen:
# the normal way to update a rebased pull request, allowed silently.
leased_named(s) if {
	leased(s)
	names_branch(s)
}

# Each pattern with a word it cannot match without, tested first.
discard_patterns := [
	{"word": "--hard", "re": `\bgit\s+reset\s+(\S+\s+)*--hard\b`, "what": "`git reset --hard` throws away uncommitted changes and moves the branch"},
	{"word": "clean", "re": `\bgit\s+clean\s+(-\S+\s+)*-[a-zA-Z]*f[a-zA-Z]*`, "what": "`git clean -f` deletes untracked files, which git cannot bring back"},
	{"word": "checkout", "re": `\bgit\s+checkout\s+(--\s+)?\.(\s|$)|\bgit\s+checkout\s+-f\b`, "what": "this discards every uncommitted change in the working tree"},
	{"word": "restore", "re": `\bgit\s+restore\s+(--\s+)?\.(\s|$)`, "what": "this discards every uncommitted change in the working tree"},
	{"word": "stash", "re": `\bgit\s+stash\s+(clear|drop)\b`, "what": "dropping stashes loses the work saved in them"},
	{"word": "branch", "re": `\bgit\s+branch\s+(\S+\s+)*-(D|[a-zA-Z]*D)\b|\bgit\s+branch\s+(\S+\s+)*--delete\s+--force\b`, "what": "`git branch -D` deletes a branch even when its commits are merged nowhere"},
	{"word": "push", "re": `\bgit\s+push\s[^;&|]*(\s--delete\s|\s:\S)`, "what": "this deletes a branch or tag on the remote"},
	{"word": "tag", "re": `\bgit\s+tag\s+(-d|--delete)\b`, "what": "this deletes a tag others may build releases from"},
	{"word": "reflog", "re": `\bgit\s+reflog\s+(expire|delete)\b`, "what": "this destroys the reflog or refs, the last way to recover lost commits"},
	{"word": "prune", "re": `\bgit\s+gc\s[^;&|]*--prune=(now|all)`, "what": "this destroys the reflog or refs, the last way to recover lost commits"},
	{"word": "update-ref", "re": `\bgit\s+update-ref\s+-d\b`, "what": "this destroys the reflog or refs, the last way to recover lost commits"},
	{"word": "filter-", "re": `\bgit\s+filter-(branch|repo)\b`, "what": "this rewrites the whole history of the repository"},
	{"word": "bfg", "re": `\bbfg\b`, "what": "this rewrites the whole history of the repository"},
	{"word": ".git", "re": `\brm\s+-\S*\s+(\./)?\.git(/|\s|$)`, "what": "this deletes the repository's history"},
	{"word": "deinit", "re": `\bgit\s+submodule\s+deinit\s[^;&|]*(-f|--force)`, "what": "this removes submodules with their local changes"},
]

# Every pattern above names git or bfg.
default names_git := false

names_git if contains(shell.text, "git")

names_git if contains(shell.text, "bfg")

shell_escalate contains decision if {
	some what in discards
	decision := {
		"rule_id": "WD-GIT-DISCARD",
		"reason": concat("", ["Can lose work: ", what, "."]),
		"severity": "MEDIUM",
		"rubric": "destructive",
		"wait": true,
	}
}

# What the command's discard patterns say it loses (none for a dry run, or a clean of ignored
# files only).
discards contains p.what if {
	may_discard
	some p in discard_patterns
	contains(shell.text, p.word)
	regex.match(p.re, shell.text)
}

default may_discard := false

may_discard if {
	names_git
	regex.match(`--hard|clean|checkout|restore|stash|branch|push|tag|reflog|prune|update-ref|filter-|bfg|\.git|deinit`, shell.text)
	not regex.match(`\bgit\s+clean\s+(-\S+\s+)*-[a-zA-Z]*[n][a-zA-Z]*\b|--dry-run`, shell.text)
	not only_ignored_clean
}

# `git clean -X` removes only ignored files (build output), which can be regenerated.
only_ignored_clean if {
	contains(shell.text, "clean")
	regex.match(`\bgit\s+clean\s+(-\S+\s+)*-[a-zA-Z]*X`, shell.text)
	not regex.match(`\bgit\s+clean\s+(-\S+\s+)*-[a-zA-Z]*x`, shell.text)
	not regex.match(`\bgit\s+(reset|checkout|restore|stash|branch|push|tag|reflog|gc|update-ref|filter)`, shell.text)
}

shell_escalate contains decision if {
	regex.match(`--no-verify|hookspath|husky=0`, shell.ltext)
	regex.match(`\bgit\s+(commit|push|merge|rebase|am)\b[^;&|]*\s--no-verify\b|\bgit\s+(-c\s+\S+\s+)*config\s[^;&|]*core\.hookspath|\bhusky=0\b`, shell.ltext)
	decision := {
		"rule_id": "WD-GIT-SKIP-CHECKS",
		"reason": "Skips or redirects the repository's git hooks (linters, secret scanners, tests).",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

shell_escalate contains decision if {
	shell.mentions(shell.text, ["remote", "push"])
	regex.match(`\bgit\s+remote\s+(add|set-url)\b|\bgit\s+push\s+(-\S+\s+)*(https?://|git@|ssh://)|\bgit\s+push\s[^;&|]*\s--(all|mirror)\b`, shell.text)
	decision := {
		"rule_id": "WD-GIT-NEW-REMOTE",
		"reason": "Sends the repository to a new or unnamed remote, or pushes every branch at once.",
		"severity": "MEDIUM",
		"rubric": "exfiltration",
		"wait": true,
	}
}

shell_deny contains decision if {
	shell.mentions(shell.text, ["delete", "protect"])
	regex.match(`\b(gh|glab)\s+repo\s+delete\b|\b(gh|glab)\s+api\s[^;&|]*(-X\s*DELETE|--method\s+DELETE)[^;&|]*/(protection|protected_branches)\b|\b(gh|glab)\s+api\s[^;&|]*/(protection|protected_branches)[^;&|]*(-X\s*DELETE|--method\s+DELETE)`, shell.text)
	decision := {
		"rule_id": "WD-FORGE-DESTROY",
		"reason": "Deletes a hosted repository or its branch protection; that is for a repository admin to do by hand.",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	regex.match(`--admin|workflow|secret|variable|circleci|collaborators|permissions|rulesets|hooks`, shell.text)
	regex.match(`\bgh\s+pr\s+merge\s[^;&|]*--admin\b|\bgh\s+workflow\s+disable\b|\b(gh|glab)\s+(secret|variable)\s+(set|delete|remove)\b|\bcircleci\s+context\s+(remove-secret|delete)\b|\bgh\s+api\s[^;&|]*(collaborators|permissions|rulesets|hooks)\b[^;&|]*(-X\s*(PUT|POST|DELETE|PATCH)|permission=)`, shell.text)
	decision := {
		"rule_id": "WD-FORGE-CONTROLS",
		"reason": "Changes the repository's controls: merging past review, disabling a workflow, changing secrets or who has access.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": true,
	}
}

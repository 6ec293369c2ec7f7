# METADATA
# scope: package
# title: Widening permissions and turning off protections
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.privilege

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
	regex.match(`chmod|user|passwd|ufw|setenforce|selinux|iptables|systemctl|cluster|administratoraccess|roles/|-policy|grant|createrole|permission=admin|--role|sudo`, shell.lscan)
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

shell_deny contains decision if {
	contains(shell.ltext, "chmod")
	regex.match(`\bchmod\s+(-\S+\s+)*-[a-z]*r[a-z]*\s+(-\S+\s+)*(0?777|0?666|a\+rwx|o\+w|a\+w)\s+(/|/(etc|usr|bin|sbin|var|opt|home|root|boot|lib)\b)`, shell.ltext)
	decision := {
		"rule_id": "WD-CHMOD-SYSTEM",
		"reason": "Makes system directories writable by every user: anyone can then replace system programs.",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	contains(shell.ltext, "chmod")
	regex.match(`\bchmod\s+(-\S+\s+)*(-[a-z]*r|--recursive)\b|\bchmod\s+(-\S+\s+)*(0?777|0?666|a\+rwx|o\+w|a\+w)\b`, shell.ltext)
	decision := {
		"rule_id": "WD-CHMOD-WIDE",
		"reason": "Changes permissions recursively or makes files writable by everyone.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

shell_escalate contains decision if {
	regex.match(`user|passwd|ufw|setenforce|selinux|iptables|systemctl|cluster|administratoraccess|roles/|-policy|grant|createrole|permission=admin|--role|sudo`, shell.ltext)
	regex.match(`\b(useradd|adduser|usermod)\b[^;&|]*(sudo|wheel|admin|root)\b|\bchpasswd\b|\bpasswd\s+\w|\bufw\s+disable|\bsetenforce\s+0|selinux=(disabled|permissive)|\biptables\s+(-f|--flush|-p\s+\w+\s+accept)|\bsystemctl\s+(stop|disable|mask)\s+(firewalld|ufw|apparmor|auditd|fail2ban)|clusterrolebinding|cluster-admin|administratoraccess|roles/(owner|editor)|add-iam-policy-binding|attach-(user|role|group)-policy|put-(user|role)-policy|\bgrant\s+all\b|\bsuperuser\b|\bcreaterole\b|permission=admin|--role\s*=?\s*(owner|admin)|\bsudo\s+-s\b|\bsudo\s+su\b`, shell.ltext)
	decision := {
		"rule_id": "WD-PRIVILEGE",
		"reason": "Grants administrator or root rights, or turns off a firewall or security module.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": true,
	}
}

file_escalate contains decision if {
	shell.mentions(shell.lcontent, ["cluster", "administratoraccess", "'*'", "roles/owner", "privileged", "hostpid", "nopasswd"])
	regex.match(`clusterrolebinding|cluster-admin|administratoraccess|['"]action['"]\s*:\s*['"]\*['"]|actions?\s*=\s*\[?\s*['"]\*['"]|roles/owner|privileged:\s*true|hostpid:\s*true|nopasswd`, shell.lcontent)
	decision := {
		"rule_id": "WD-PRIVILEGE",
		"reason": "Writes configuration that grants administrator rights or a privileged container.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": false,
	}
}

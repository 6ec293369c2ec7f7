# METADATA
# scope: package
# title: Destroying data and infrastructure (databases, clusters, cloud resources)
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.data_and_infra

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
	regex.match(`drop|truncate|delete|update|flush|prisma|alembic|db:|bq|migrate:|terraform|pulumi|aws|gcloud|gsutil|kubectl|helm|prune|rclone|restic|borg|velero|vault|gitlab-rails|heroku|doctl|fly|prod`, shell.lscan)
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

cmd := shell.ltext

# SQL sits inside the client's quotes: match statements against the whole command.
raw := lower(shell.command)

# Statements and tools that drop or mass-change data.
data_loss := `\bdrop\s+(database|schema|table|keyspace|collection|materialized\s+view)\b|\btruncate\s+(table\s+)?[a-z_."]+\s*(,|;|restart|cascade|'|"|$)|\bdelete\s+from\s+[a-z0-9_."]+\s*(;|'|"|$)|\bupdate\s+[a-z0-9_."]+\s+set\s+[^;'"]*(;|'|"|$)|\bflush(all|db)\b|\.drop\(\)|dropdatabase\(|\.deletemany\(\s*\{\s*\}\s*\)|\bprisma\s+(migrate\s+reset|db\s+push[^;&|]*--accept-data-loss)|manage\.py\s+flush|\balembic\s+downgrade\b|\b(rails|rake)\s+db:(drop|reset|schema:load)|\bmysqladmin\b[^;&|]*\sdrop\b|\bdropdb\b|\bbq\s+rm\b|migrate:(fresh|reset)|\bknex\s+migrate:rollback\s+--all`

# A database client or migration tool is what runs the statement (not a grep or an echo).
db_tool := `\b(psql|mysql|mariadb|sqlite3|cqlsh|mongo|mongosh|redis-cli|sqlcmd|clickhouse(-client)?|bq|snowsql|duckdb|prisma|manage\.py|alembic|rails|rake|dbt|mysqladmin|dropdb|knex|artisan|sequelize|flyway|liquibase)\b|\bexecute\(|\.query\(`

# A scratch database: its name says it is for tests.
test_db if regex.match(`(^|[^a-z])(test|tests|testing)([^a-z]|$)|_test\b`, cmd)

default data_change := false

data_change if {
	regex.match(`drop|truncate|delete|update|flush|prisma|alembic|db:|bq|migrate:`, raw)
	regex.match(data_loss, raw)
	regex.match(db_tool, raw)
}

shell_deny contains decision if {
	data_change
	shell.production(cmd)
	decision := {
		"rule_id": "WD-DATA-PROD-DESTROY",
		"reason": "Drops or mass-deletes data in a production database. Do this through a reviewed migration and a backup, not from an agent.",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	data_change
	not shell.production(cmd)
	not test_db
	decision := {
		"rule_id": "WD-DATA-DESTROY",
		"reason": "Drops or mass-changes database data; check which database this is and whether it can be restored.",
		"severity": "HIGH",
		"rubric": "destructive",
		"wait": true,
	}
}

# Cloud, cluster and backup deletions, each with a word it cannot match without.
infra_destroy := [
	{"word": "terraform", "re": `\bterraform\s+(destroy|apply[^;&|]*-destroy|state\s+(rm|push))|\bterraform\s+apply[^;&|]*-auto-approve`},
	{"word": "pulumi", "re": `\bpulumi\s+(destroy|up[^;&|]*(--yes|-y))`},
	{"word": "aws", "re": `\baws\s+[a-z0-9-]+\s+(delete-[a-z-]+|terminate-[a-z-]+|rb\b|deregister-[a-z-]+|remove-[a-z-]+)|\baws\s+s3\s+(rm|sync)\b[^;&|]*(--recursive|--delete)`},
	{"word": "gcloud", "re": `\bgcloud\s[^;&|]*\s(delete|remove-iam-policy-binding)\b`},
	{"word": "gsutil", "re": `\bgsutil\s[^;&|]*\b(rm|rb)\b`},
	{"word": "delete", "re": `\baz\s[^;&|]*\sdelete\b`},
	{"word": "kubectl", "re": `\bkubectl\s+([^;&|]*\s)?(delete|drain)\s|\bkubectl\s+([^;&|]*\s)?scale\b[^;&|]*--replicas[= ]0\b`},
	{"word": "helm", "re": `\bhelm\s+(uninstall|delete|del)\b`},
	{"word": "prune", "re": `\bdocker\s+(system|volume)\s+prune\b[^;&|]*(-a\b|--all|--volumes)`},
	{"word": "rclone", "re": `\brclone\s+(purge|delete|sync)\b`},
	{"word": "restic", "re": `\brestic\s+forget\b`},
	{"word": "borg", "re": `\bborg\s+(delete|prune)\b`},
	{"word": "velero", "re": `\bvelero\s+(backup|schedule|restore)\s+delete\b`},
	{"word": "vault", "re": `\bvault\s+(secrets\s+disable|kv\s+(destroy|metadata\s+delete)|delete)\b`},
	{"word": "gitlab-rails", "re": `\bgitlab-rails\s+runner\b[^;&|]*destroy`},
	{"word": "heroku", "re": `\bheroku\s+(apps:destroy|pg:reset)`},
	{"word": "doctl", "re": `\bdoctl\s[^;&|]*\sdelete\b`},
	{"word": "fly", "re": `\b(fly|flyctl)\s+(apps\s+)?destroy\b`},
]

# Local and per-pull-request sandboxes, dry runs, and deleting pods (their controller recreates them).
harmless_infra if regex.match(`--dry-?run\b|\brclone\b[^;&|]*\s-n\b|\b(kind|minikube|k3d)\s+delete\b|\bkubectl\s+([^;&|]*\s)?delete\s+(pod|pods|po)\b|\bterraform\s+destroy\s[^;&|]*-target[= ]`, cmd)

default infra_change := false

infra_change if {
	infra_named
	not harmless_infra
}

# (Apart from infra_change: rego-cpp evaluates a `not` before the other statements of a body
# that iterates, so harmless_infra would run for every command.)
default infra_named := false

infra_named if {
	regex.match(`terraform|pulumi|aws|gcloud|gsutil|delete|kubectl|helm|prune|rclone|restic|borg|velero|vault|gitlab-rails|heroku|doctl|fly`, cmd)
	some p in infra_destroy
	contains(cmd, p.word)
	regex.match(p.re, cmd)
}

shell_deny contains decision if {
	infra_change
	shell.production(cmd)
	decision := {
		"rule_id": "WD-INFRA-PROD-DESTROY",
		"reason": "Deletes or tears down production infrastructure from an agent session. Go through the reviewed deploy path.",
		"severity": "CRITICAL",
	}
}

shell_escalate contains decision if {
	infra_change
	not shell.production(cmd)
	decision := {
		"rule_id": "WD-INFRA-DESTROY",
		"reason": "Deletes cloud, cluster or backup resources, or applies infrastructure changes without review.",
		"severity": "HIGH",
		"rubric": "destructive",
		"wait": true,
	}
}

# Any other change aimed at production: applies, deploys, rollouts, copies out of it.
shell_escalate contains decision if {
	shell.bash_call
	shell.production(cmd)
	regex.match(`\b(kubectl|helm|terraform|pulumi|gcloud|aws|az|dbt|ansible-playbook|flyctl|heroku|psql|mysql|mongosh|redis-cli)\b[^;&|]*\s(apply|scale|rollout|patch|set|edit|cp|exec|upgrade|install|deploy|run|migrate|alter|insert|update|delete|create|replace|annotate|label|taint|import)\b`, cmd)
	not regex.match(`--dry-?run\b|\bterraform\s+plan\b|\s(get|describe|logs|show|list|select)\s`, cmd)
	not infra_change
	not data_change
	decision := {
		"rule_id": "WD-PROD-CHANGE",
		"reason": "Changes something in production.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": true,
	}
}

# Config that removes protections or exposes data: open ingress, public buckets, no deletion
# protection, local state for shared infrastructure, a production database URL in a dev file.
file_escalate contains decision if {
	shell.mentions(shell.lcontent, ["0.0.0.0/0", "::/0", "deletion_protection", "prevent_destroy", "skip_final_snapshot", "publicly_accessible", "block_public_", "public-read", "backend", "force_destroy", "principal"])
	regex.match(`0\.0\.0\.0/0|::/0|deletion_protection\s*=\s*false|prevent_destroy\s*=\s*false|skip_final_snapshot\s*=\s*true|publicly_accessible\s*=\s*true|block_public_(acls|policy)\s*=\s*false|acl\s*=\s*['"]public-read|backend\s+['"]local['"]|force_destroy\s*=\s*true|['"]principal['"]\s*:\s*['"]\*['"]`, shell.lcontent)
	decision := {
		"rule_id": "WD-INFRA-CONFIG",
		"reason": "Removes a protection or exposes a resource (open ingress, public access, no deletion protection, local state).",
		"severity": "HIGH",
		"rubric": "general",
		"wait": false,
	}
}

file_escalate contains decision if {
	names_db_url
	some url in regex.find_n(`\b(postgres(ql)?|mysql|mongodb(\+srv)?|redis|amqp)://\S*`, shell.lcontent, -1)
	shell.production(url)
	not shell.production(shell.path)
	decision := {
		"rule_id": "WD-INFRA-CONFIG",
		"reason": "Points a non-production config at a production database.",
		"severity": "HIGH",
		"rubric": "destructive",
		"wait": false,
	}
}

file_escalate contains decision if {
	shell.mentions(shell.lpath, ["migrat", "alembic/", "versions/"])
	regex.match(`(^|/)(migrations?|alembic|versions|db/migrate)/`, shell.lpath)
	regex.match(`drop_column|drop_table|drop\s+(column|table)|remove_column|droptable|dropcolumn|\.dropcolumn\(|alter_column[^\n]*nullable`, shell.lcontent)
	decision := {
		"rule_id": "WD-DATA-MIGRATION",
		"reason": "A migration that drops a table or column loses its data when it runs.",
		"severity": "MEDIUM",
		"rubric": "destructive",
		"wait": false,
	}
}

default names_db_url := false

names_db_url if {
	contains(shell.lcontent, "://")
	shell.mentions(shell.lcontent, ["postgres", "mysql", "mongodb", "redis", "amqp"])
}

# Production configuration files: their edits deploy to production.
file_escalate contains decision if {
	contains(shell.lpath, "prod")
	shell.production(regex.replace(shell.lpath, `^.*/(home|users)/[^/]+/`, ""))
	regex.match(`\.(tf|tfvars|hcl|ya?ml|json|toml|ini|conf|properties)$|(^|/)\.env[^/]*$`, shell.lpath)
	decision := {
		"rule_id": "WD-PROD-CONFIG",
		"reason": "Edits production configuration.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

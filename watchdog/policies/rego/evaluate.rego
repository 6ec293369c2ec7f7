# METADATA
# scope: package
# title: watchdog built-in aggregation (used when a root has no system/evaluate.rego)
# custom:
#   entrypoint: true
package cupcake.system

import rego.v1

# Behaves as Cupcake's system/evaluate.rego: every set named after a verb anywhere under
# data.cupcake.policies is flattened into one list per verb.
evaluate := {
	"halts": verb_decisions("halt"),
	"denials": verb_decisions("deny"),
	"blocks": verb_decisions("block"),
	"asks": verb_decisions("ask"),
	"modifications": verb_decisions("modify"),
	"add_context": verb_decisions("add_context"),
}

default verb_decisions(_) := []

verb_decisions(verb) := [member |
	walk(data.cupcake.policies, [path, verb_set])
	count(path) > 0
	path[count(path) - 1] == verb
	some member in verb_set
]

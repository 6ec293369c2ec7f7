# METADATA
# scope: package
# title: Always inject on prompt (builtin)
# custom:
#   severity: LOW
#   id: BUILTIN-INJECT-PROMPT
#   routing:
#     required_events: ["UserPromptSubmit"]
package cupcake.policies.builtins.claude_code_always_inject_on_prompt

# Cupcake's `claude_code_always_inject_on_prompt` builtin (alias `always_inject_on_prompt`):
# context the agent gets with every prompt.
#
#   builtins:
#     claude_code_always_inject_on_prompt:
#       enabled: true
#       context:
#         - "Run the tests before you commit."     # static: input.builtin_config...static_contexts
#         - file: docs/CONVENTIONS.md              # signal __builtin_prompt_context_1: cat '<path>', 2 s
#         - command: git status --short            # signal __builtin_prompt_context_2: 5 s
#
# add_context  on UserPromptSubmit: the static strings, then the dynamic ones from
#   input.signals.__builtin_prompt_context_<i> (in index order; a non-string value, such as a
#   failed command's {exit_code, output, error, success}, is json.marshal-ed), joined by a blank
#   line, as one string.
#
# Written for watchdog from the behaviour of Cupcake v0.5.2 (same routing, same text).
# Deviation: dynamic contexts come in their index order (Cupcake: the order of the signals
# object's keys, which puts _10 before _2). The dynamic ones need the signals runner to run the
# generated signals; until then only the static contexts are injected.

import rego.v1

prefix := "__builtin_prompt_context_"

add_context contains text if {
	input.hook_event_name == "UserPromptSubmit"
	contexts := array.concat(static_contexts, dynamic_contexts)
	count(contexts) > 0
	text := concat("\n\n", contexts)
}

static_contexts := [s |
	some s in input.builtin_config.claude_code_always_inject_on_prompt.static_contexts
	is_string(s)
]

indices := [to_number(suffix) |
	some name in object.keys(input.signals)
	startswith(name, prefix)
	suffix := substring(name, count(prefix), -1)
	regex.match(`^[0-9]+$`, suffix)
]

dynamic_contexts := [render(input.signals[name]) |
	some i in numbers.range(0, last_index)
	name := concat("", [prefix, format_int(i, 10)])
	name in object.keys(input.signals)
] if {
	count(indices) > 0
} else := []

# rego-cpp's max() compares numbers as strings (max([10, 2]) is 2): compare them one by one
last_index := found[0] if {
	found := [i |
		some i in indices
		every j in indices {
			j <= i
		}
	]
}

render(value) := value if {
	is_string(value)
} else := json.marshal(value)

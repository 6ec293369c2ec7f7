# METADATA
# scope: package
# title: Installing from, or publishing to, the wrong place
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.supply_chain

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
	regex.match(`install|add|get|\bi\b|npx|bunx|dlx|publish|twine|push|deploy|release`, shell.lscan)
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

escalate contains decision if {
	shell.file_call
	some decision in file_escalate
}

file_path := shell.lpath if shell.file_call

body := shell.lcontent

# Registries, indexes and proxies that are the ecosystems' own or common company hosting.
known_index(h) if regex.match(`^(registry\.npmjs\.org|registry\.yarnpkg\.com|npm\.pkg\.github\.com|pypi\.org|files\.pythonhosted\.org|test\.pypi\.org|download\.pytorch\.org|pypi\.nvidia\.com|proxy\.golang\.org|sum\.golang\.org|goproxy\.io|index\.crates\.io|crates\.io|rubygems\.org|repo1?\.maven\.org|repo\.maven\.apache\.org|plugins\.gradle\.org|pkgs\.dev\.azure\.com|[a-z0-9-]+\.jfrog\.io|[a-z0-9-]+\.pkgs\.visualstudio\.com|gitlab\.com|[a-z0-9.-]+\.codeartifact\.[a-z0-9-]+\.amazonaws\.com|[a-z0-9-]+-(python|npm)\.pkg\.dev)$`, h)

# Setting where every later install comes from.
registry_setting := `\b(npm|yarn|pnpm)\s+config\s+set\s+[^;&|]*registry|\bpip[0-9]?\s+config\s+set\b|\b(go\s+env\s+-w\s+)?goproxy=|\bgonosumdb=|\bgoflags=[^;&|]*-insecure|\bgoinsecure=|\bgonosumcheck|\bgosumdb=off|\bpip_(extra_)?index_url=|--(extra-)?index-url[= ]|\bregistry\s*=|index-url\s*=|strict-ssl\s*=?\s*false|--trusted-host|npm_config_registry`

registry_subject := shell.ltext if shell.bash_call

registry_subject := body if {
	shell.file_call
	regex.match(`(^|/)(\.npmrc|\.yarnrc(\.yml)?|pip\.conf|pip\.ini|\.pypirc|\.condarc|settings\.xml|\.cargo/config(\.toml)?|go\.env|requirements[^/]*\.txt)$`, file_path)
}

unsafe_index(s) if regex.match(`http://[^\s'"]+|strict-ssl\s*=?\s*false|--trusted-host|gonosumdb=\*|gosumdb=off|-insecure|goinsecure=|insecure\s*=\s*true`, s)

unknown_index(s) if {
	some h in shell.url_hosts(s)
	not known_index(h)
	not shell.local_host(h)
}

# Words every registry_setting holds.
default sets_registry := false

sets_registry if {
	shell.mentions(registry_subject, ["registry", "config", "goproxy", "gonosumdb", "goflags", "goinsecure", "gonosumcheck", "gosumdb", "pip_", "index-url", "strict-ssl", "--trusted-host"])
	regex.match(registry_setting, registry_subject)
}

deny contains decision if {
	sets_registry
	unsafe_index(registry_subject)
	decision := {
		"rule_id": "WD-REGISTRY-INSECURE",
		"reason": "Installs from, or points the package manager at, an index over plain HTTP or with TLS or checksum verification off: anyone on the path can swap the packages.",
		"severity": "CRITICAL",
	}
}

escalate contains decision if {
	sets_registry
	not unsafe_index(registry_subject)
	unknown_index(registry_subject)
	decision := {
		"rule_id": "WD-REGISTRY-UNKNOWN",
		"reason": "Uses a package index or registry that is not the ecosystem's own: lookalike mirrors serve trojaned packages.",
		"severity": "HIGH",
		"rubric": "general",
		"wait": true,
	}
}

# Publicly reported compromised releases (malicious code shipped under a real package name).
deny contains decision if {
	shell.pre_tool
	compromised_named
	regex.match(`\bevent-stream@3\.3\.6\b|\bflatmap-stream\b|\bua-parser-js@(0\.7\.29|0\.8\.0|1\.0\.0)\b|\bcoa@2\.0\.3\b|\brc@1\.2\.9\b|\bcolors@1\.4\.(1|2)\b|\bfaker@6\.6\.6\b|\bnode-ipc@(10\.1\.[12]|11\.0\.0)\b|\bctx==0\.2\.6\b|\bxz-utils[^;&|]*5\.6\.[01]\b|\bultralytics==8\.3\.4[12]\b`, concat(" ", [shell.ltext, body]))
	decision := {
		"rule_id": "WD-KNOWN-COMPROMISED",
		"reason": "Installs a package version publicly known to have shipped malicious code.",
		"severity": "CRITICAL",
	}
}

default compromised_named := false

compromised_named if {
	shell.shell_call
	regex.match(`event-stream|flatmap-stream|ua-parser-js|coa@|rc@|colors@|faker@|node-ipc|ctx==|xz-utils|ultralytics`, shell.ltext)
}

compromised_named if {
	body != ""
	shell.mentions(body, ["event-stream", "flatmap-stream", "ua-parser-js", "coa@", "rc@", "colors@", "faker@", "node-ipc", "ctx==", "xz-utils", "ultralytics"])
}

# Adding a dependency by name: a typo or a lookalike name installs someone else's code,
# and install scripts run at once.
install_segments := [s |
	regex.match(`\b(install|i|add|get)\b`, shell.ltext)
	some s in regex.find_n(`\b(pip[0-9.]*|uv\s+pip|uv|pipx|poetry|pdm|npm|yarn|pnpm|bun|cargo|go|gem|composer|dotnet|conda|mamba)\s+(install|i|add|get)\b[^;&|]*`, shell.ltext, -1)
]

value_flags := {"-r", "--requirement", "-e", "--editable", "-c", "--constraint", "--index-url", "-i", "--extra-index-url", "--features", "-f", "--find-links", "-t", "--target", "--python", "-p", "--prefix", "--root", "--registry", "--version", "--channel"}

# The most-used packages of each ecosystem, by name: familiar enough not to ask about.
# A version pin does not change the name (torch==2.4.1 is torch).
familiar := {
	"requests", "numpy", "pandas", "scipy", "torch", "torchvision", "tensorflow", "jax", "scikit-learn",
	"matplotlib", "pytest", "black", "ruff", "mypy", "flask", "django", "fastapi", "uvicorn", "pydantic",
	"sqlalchemy", "alembic", "boto3", "httpx", "pyyaml", "rich", "click", "typer", "jinja2", "celery",
	"redis", "psycopg2", "psycopg2-binary", "psycopg", "transformers", "datasets", "pillow", "setuptools", "wheel", "pip",
	"react", "react-dom", "next", "vue", "typescript", "eslint", "prettier", "jest", "vitest", "lodash",
	"express", "axios", "zod", "webpack", "vite", "@types/node", "@types/react", "tailwindcss", "prisma", "@prisma/client",
	"serde", "serde_json", "tokio", "clap", "anyhow", "thiserror", "reqwest", "rand", "regex", "tracing", "chrono", "log",
	"rails", "rake", "bundler", "rspec",
}

familiar_name(w) if pkg_name(regex.replace(lower(w), `[=<>!~\[;].*$`, "")) in familiar

pkg_name(w) := split(w, "@")[0] if not startswith(w, "@")

pkg_name(w) := concat("", ["@", split(w, "@")[1]]) if startswith(w, "@")

named_packages(seg) := [w |
	ws := shell.words(seg)
	some i
	w := ws[i]
	i >= 2
	not startswith(w, "-")
	not ws[i - 1] in value_flags
	not w in {"install", "i", "add", "get", "pip"}
	not regex.match(`^(\.|\./|/|~|\.\[)|^\.\[|^-|^[a-z]+==?$|^[0-9]`, w)
	not familiar_name(w)
]

shell_escalate contains decision if {
	some seg in install_segments
	pkgs := named_packages(seg)
	count(pkgs) > 0
	decision := {
		"rule_id": "WD-NEW-DEPENDENCY",
		"reason": concat("", ["Installs ", shell.safe(concat(", ", pkgs)), ": check the name is the package the task needs (typosquats and lookalikes run their install scripts at once)."]),
		"severity": "LOW",
		"rubric": "general",
		"wait": false,
	}
}

shell_escalate contains decision if {
	regex.match(`npx|bunx|dlx|pip|npm|yarn`, shell.ltext)
	regex.match(`\b(npx|pnpx|bunx)\s+(-y\s+|--yes\s+)?[^\s]+@(latest|next|\*)\b|\b(npx|pnpx)\s+(-y|--yes)\s|\bpnpm\s+dlx\b|\bpip[0-9]?\s+install(\s[^;&|]*)?\s(-r\s+https?://|--requirement[= ]https?://|git\+|https?://\S+\.(whl|tar\.gz|tgz|zip)\b|https?://\S+/(archive|tarball)/)|\b(npm|yarn|pnpm)\s+(install|add|i)\s[^;&|]*(https?://|git\+|github:)`, shell.ltext)
	decision := {
		"rule_id": "WD-NEW-DEPENDENCY",
		"reason": "Runs or installs a package straight from a URL, a git repository or an unpinned latest version.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

manifest := `(^|/)(package\.json|requirements[^/]*\.txt|pyproject\.toml|setup\.py|setup\.cfg|pipfile|cargo\.toml|go\.mod|gemfile|build\.gradle(\.kts)?|pom\.xml|composer\.json|dockerfile[^/]*|containerfile)$`

file_escalate contains decision if {
	shell.mentions(body, ["://", "install", "prepare", "from"])
	regex.match(manifest, file_path)
	regex.match(`\bgit\s*=\s*['"]https?://|@\s*(https?|git\+[a-z]+)://|['"](https?|git\+[a-z]+)://[^'"]+\.(tgz|tar\.gz|whl|zip)['"]|\bgit\+https?://|['"](pre|post)?install['"]\s*:|['"]prepare['"]\s*:|^\s*from\s+[a-z0-9.-]+\.[a-z]{2,}(:[0-9]+)?/`, body)
	decision := {
		"rule_id": "WD-MANIFEST-SOURCE",
		"reason": "Adds a dependency from a URL, a git fork or a custom image registry, or an install-time script.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

shell_escalate contains decision if {
	regex.match(`publish|twine|push|deploy|release`, shell.ltext)
	regex.match(`\b(npm|yarn|pnpm)\s+publish\b|\bcargo\s+publish\b|\btwine\s+upload\b|\b(poetry|pdm|uv|flit|hatch)\s+publish\b|\bgem\s+push\b|gradlew?\s+[^;&|]*\bpublish|\bmvn\s+[^;&|]*\bdeploy\b|\bdocker\s+push\b|\bgh\s+release\s+create\b|\bvsce\s+publish\b`, shell.ltext)
	decision := {
		"rule_id": "WD-PUBLISH",
		"reason": "Publishes a package, image or release: it cannot be taken back once others download it.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": true,
	}
}

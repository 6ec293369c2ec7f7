# METADATA
# scope: package
# title: Weakening CI, tests and the checks that guard the repository
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash", "Write", "Edit", "MultiEdit"]
package cupcake.policies.ci_and_tests

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
	regex.match(`rm`, shell.lscan)
}

escalate contains decision if {
	shell_named
	some decision in shell_escalate
}

deny contains decision if {
	shell.file_call
	some decision in file_deny
}

escalate contains decision if {
	shell.file_call
	some decision in file_escalate
}

file_path := shell.lpath if shell.file_call

body := shell.lcontent

ci_file := `/\.github/workflows/|/\.github/actions/|(^|/)\.gitlab-ci\.ya?ml$|/\.gitlab/ci/|/\.circleci/|(^|/)jenkinsfile$|/\.buildkite/|azure-pipelines\.ya?ml$|bitbucket-pipelines\.yml$|(^|/)codeowners$|\.pre-commit-config\.ya?ml$|/\.github/dependabot\.ya?ml$|(^|/)\.husky/|(^|/)lefthook\.ya?ml$|/\.github/settings\.ya?ml$`

# Words every ci_file name holds.
default ci_path := false

ci_path if {
	regex.match(`\.github/|\.gitlab|\.circleci/|jenkinsfile|\.buildkite/|pipelines|codeowners|\.pre-commit-config|\.husky/|lefthook`, file_path)
	regex.match(ci_file, file_path)
}

file_deny contains decision if {
	ci_path
	shell.mentions(body, ["secrets", "env"])
	regex.match(`tojson\(\s*secrets\s*\)|\$\{\{\s*secrets\.[^}]*\}\}[^\n]*\b(curl|wget|nc|base64)\b|\b(curl|wget|nc)\b[^\n]*\$\{\{\s*secrets\.|\$\((env|printenv)\b|\b(env|printenv)\s*\|\s*(base64|curl|nc)`, body)
	decision := {
		"rule_id": "WD-CI-SECRETS-OUT",
		"reason": "Makes CI print or send the repository's secrets.",
		"severity": "CRITICAL",
	}
}

file_escalate contains decision if {
	ci_path
	decision := {
		"rule_id": "WD-CI-EDIT",
		"reason": "Edits CI or repository controls (workflows, CODEOWNERS, pre-commit hooks): check that no test, scan or review step is weakened.",
		"severity": "MEDIUM",
		"rubric": "general",
		"wait": false,
	}
}

# Tests: skipping, ignoring, deselecting, or lowering the bar instead of fixing the code.
test_file := `(^|/)(tests?|__tests__|spec|specs|src/test)/|_test\.(go|py|rb|exs?)$|(^|/)test_[^/]*\.py$|\.(test|spec)\.[cm]?[jt]sx?$|(test|tests|spec)\.(kt|java|scala|cs|swift)$|(^|/)conftest\.py$`

test_config := `(^|/)(jest|vitest|karma|playwright|cypress)\.config\.[cm]?[jt]s$|(^|/)(pytest\.ini|tox\.ini|setup\.cfg|pyproject\.toml|\.coveragerc|phpunit\.xml(\.dist)?|\.nycrc(\.json)?|codecov\.ya?ml|package\.json|cargo\.toml|build\.gradle(\.kts)?|pom\.xml|\.mocharc\.[a-z]+)$`

weakened_config := `testpathignorepatterns|--deselect|--ignore[= ]|\bfail_under\s*=\s*[0-5]?[0-9](\.0)?\b|coveragethreshold|--cov-fail-under[= ]?[0-5]?[0-9]\b|--passwithnotests|--no-tests|exclude_lines|\bbail\s*:\s*false|['"]test['"]\s*:\s*['"](echo|true|exit 0)`

file_escalate contains decision if {
	skips_tests
	regex.match(`\.(py|[cm]?[jt]sx?|go|rs|rb|java|kt|scala|cs|swift|php|exs?)$`, file_path)
	decision := tests_weakened
}

# Skip markers, lowered bars and always-true asserts, in parts, each behind a word it cannot
# match without: a test file is long, and a regex costs by the length of its text and of its
# pattern (`exit(` holds `xit(`, so that small pattern alone runs on most Python files).
default skips_tests := false

skips_tests if shell.mentions(body, ["unittest.skip", "pytest.skip(", "pytest_runtest_makereport", "pytest_collection_modifyitems"])

skips_tests if {
	contains(body, "@pytest.mark.")
	regex.match(`@pytest\.mark\.(skip|xfail)`, body)
}

skips_tests if {
	shell.mentions(body, ["#[ignore", "@disabled", "@ignore"])
	regex.match(`#\[ignore\b|@disabled\b|@ignore\b`, body)
}

skips_tests if {
	shell.mentions(body, [".skip(", ".todo("])
	regex.match(`\b(it|test|describe)\.(skip|todo)\(|\bt\.skip(now)?\(`, body)
}

skips_tests if {
	shell.mentions(body, ["t.skip", "skip("])
	regex.match(`\bt\.skip(now)?\(|\bskip\(\s*["']`, body)
}

skips_tests if {
	shell.mentions(body, ["xit(", "xdescribe(", "xtest("])
	regex.match(`\bx(it|describe|test)\(`, body)
}

skips_tests if {
	contains(body, "tobe(")
	regex.match(`expect\(\s*true\s*\)\.tobe\(\s*true\s*\)`, body)
}

skips_tests if {
	contains(body, "assert")
	contains(body, "true")
	regex.match(`assert\s+true\b`, body)
}

skips_tests if {
	contains(body, "//")
	contains(body, "return")
	contains(body, "skip")
	regex.match(`return\s*;?\s*//\s*skip`, body)
}

file_escalate contains decision if {
	file_path != ""
	regex.match(test_config, file_path)
	shell.mentions(body, ["testpathignorepatterns", "--deselect", "--ignore", "fail_under", "coveragethreshold", "--cov-fail-under", "--passwithnotests", "--no-tests", "exclude_lines", "bail", "test"])
	regex.match(weakened_config, body)
	decision := tests_weakened
}

# Production code that behaves differently under test.
file_escalate contains decision if {
	shell.mentions(body, ["node_env", "pytest_current_test", "sys.modules", "app.testing", "rails.env.test", "testing", "is_test_env", "env('ci"])
	not regex.match(test_file, file_path)
	regex.match(`node_env\s*[!=]==?\s*["']test|pytest_current_test|["']pytest["']\s+in\s+sys\.modules|\bapp\.testing\b|rails\.env\.test\?|\bif\s+testing\b|\bis_test_env\b|env\(["']ci["']\)`, body)
	decision := tests_weakened
}

shell_escalate contains decision if {
	shell.bash_call
	contains(shell.ltext, "rm")
	shell.mentions(shell.ltext, ["test", "spec"])
	regex.match(`\b(git\s+rm|rm)\s[^;&|]*((^|[\s/])(tests?|__tests__|spec|specs)(/|\s|$)|test_[a-z0-9_]+\.py\b|_test\.(go|py)\b|\.(test|spec)\.[jt]sx?\b)`, shell.ltext)
	decision := tests_weakened
}

tests_weakened := {
	"rule_id": "WD-TESTS-WEAKENED",
	"reason": "Skips, deletes or loosens tests (or makes code special-case the test run) instead of fixing what fails.",
	"severity": "MEDIUM",
	"rubric": "general",
	"wait": false,
}

"""`input.watchdog.shell`: shell commands parsed with bashlex into the commands they run, wrappers
unwrapped, every file argument classed (project, home, system, temp, other)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PolicyRoot, bash, claude_event, rego_policy
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import shell

HOME = "/home/u"


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("x")
    (path / "notes.txt").write_text("x")
    return path.resolve()


def parse(command: str, cwd: Path | str = "/srv/app") -> dict[str, Any]:
    return shell.parse(command, str(cwd), HOME)


def argvs(command: str, cwd: Path | str = "/srv/app") -> list[list[str]]:
    out = parse(command, cwd)
    assert out["parse_error"] is None, out["parse_error"]
    return [c["argv"] for c in out["commands"]]


def only(command: str, cwd: Path | str = "/srv/app") -> dict[str, Any]:
    out = parse(command, cwd)
    assert out["parse_error"] is None, out["parse_error"]
    assert len(out["commands"]) == 1, out["commands"]
    result: dict[str, Any] = out["commands"][0]
    return result


@pytest.mark.parametrize(("command", "expected"), [
    ("ls -la", [["ls", "-la"]]),
    ("a | b | c", [["a"], ["b"], ["c"]]),
    ("a && b || c; d & e", [["a"], ["b"], ["c"], ["d"], ["e"]]),
    ("(cd x && make) ; ls", [["cd", "x"], ["make"], ["ls"]]),
    ("{ a; b; } > out", [["a"], ["b"]]),
    ("for f in *.py; do rm $f; done", [["rm", "$f"]]),
    ("if test -f x; then cat x; else touch x; fi", [["test", "-f", "x"], ["cat", "x"],
                                                     ["touch", "x"]]),
    ("while read l; do echo $l; done < list", [["read", "l"], ["echo", "$l"]]),
    ("f() { rm -rf x; }; f", [["rm", "-rf", "x"], ["f"]]),
    ("echo $(whoami) `hostname`", [["whoami"], ["hostname"], ["echo", "$(whoami)",
                                                              "`hostname`"]]),
    ("diff <(ls a) <(ls b)", [["ls", "a"], ["ls", "b"], ["diff", "<(ls a)", "<(ls b)"]]),
    ("X=$(id -u) make", [["id", "-u"], ["make"]]),
    ("echo 'a  b' \"c d\" e\\ f", [["echo", "a  b", "c d", "e f"]]),
    ("! grep -q x f", [["grep", "-q", "x", "f"]]),
], ids=["simple", "pipes", "operators", "subshell", "group", "for", "if", "while", "function",
        "command-substitution", "process-substitution", "assignment", "quotes", "negation"])
def test_forms(command: str, expected: list[list[str]]) -> None:
    assert argvs(command) == expected


@pytest.mark.parametrize(("command", "argv", "wrapped_by"), [
    ("bash -c 'rm -rf /'", ["rm", "-rf", "/"], ["bash -c"]),
    ("sh -c \"curl x | sh\"", ["sh"], ["sh -c"]),  # the last of two; see test below
    ("bash -lc 'make test'", ["make", "test"], ["bash -c"]),
    ("bash -o pipefail -e -c 'make'", ["make"], ["bash -c"]),
    ("/bin/zsh -c 'ls'", ["ls"], ["zsh -c"]),
    ("eval 'rm -rf ~'", ["rm", "-rf", "~"], ["eval"]),
    ("eval rm -rf x", ["rm", "-rf", "x"], ["eval"]),
    ("env -i -u HOME FOO=1 BAR=2 python x.py", ["python", "x.py"], ["env"]),
    ("env -- ls", ["ls"], ["env"]),
    ("sudo -u root -E apt-get install x", ["apt-get", "install", "x"], ["sudo"]),
    ("sudo -- rm /etc/hosts", ["rm", "/etc/hosts"], ["sudo"]),
    ("sudo --user=root ls", ["ls"], ["sudo"]),
    ("nohup ./server &", ["./server"], ["nohup"]),
    ("timeout 10 make", ["make"], ["timeout"]),
    ("timeout -s KILL -k 5 10s make", ["make"], ["timeout"]),
    ("timeout --signal=TERM 10 make", ["make"], ["timeout"]),
    ("nice -n 10 make", ["make"], ["nice"]),
    ("nice -5 make", ["make"], ["nice"]),
    ("xargs rm -f", ["rm", "-f"], ["xargs"]),
    ("xargs -0 -n 1 -I {} cp {} /tmp", ["cp", "{}", "/tmp"], ["xargs"]),
    ("xargs -i rm {}", ["rm", "{}"], ["xargs"]),
    ("exec python app.py", ["python", "app.py"], ["exec"]),
    ("command -p ls", ["ls"], ["command"]),
    ("command -v ls", ["command", "-v", "ls"], []),
    ("stdbuf -oL tail -f log", ["tail", "-f", "log"], ["stdbuf"]),
    ("sudo env PATH=/x nohup bash -c 'timeout 5 rm -rf /tmp/x'", ["rm", "-rf", "/tmp/x"],
     ["sudo", "env", "nohup", "bash -c", "timeout"]),
    ("bash -c \"bash -c 'eval \\\"rm x\\\"'\"", ["rm", "x"], ["bash -c", "bash -c", "eval"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrappers(command: str, argv: list[str], wrapped_by: list[str]) -> None:
    commands = parse(command)["commands"]
    assert commands[-1]["argv"] == argv
    assert commands[-1]["wrapped_by"] == wrapped_by


def test_shell_c_string_with_pipe() -> None:
    assert argvs("sh -c 'curl -s x | sh'") == [["curl", "-s", "x"], ["sh"]]
    assert [c["wrapped_by"] for c in parse("sh -c 'curl x | sh'")["commands"]] == \
        [["sh -c"], ["sh -c"]]


def test_wrapper_alone_is_the_command() -> None:
    assert only("sudo -v")["argv"] == ["sudo", "-v"]
    assert only("env")["argv"] == ["env"]
    assert only("bash script.sh")["argv"] == ["bash", "script.sh"]
    assert only("bash")["wrapped_by"] == []


def test_pipe_into_xargs() -> None:
    commands = parse("find . -name '*.pyc' | xargs rm -f")["commands"]
    assert [(c["argv"], c["wrapped_by"]) for c in commands] == [
        (["find", ".", "-name", "*.pyc"], []), (["rm", "-f"], ["xargs"])]


def test_heredocs() -> None:
    """A shell fed a heredoc runs its body; other heredocs are data. Quoted delimiters (bashlex
    rejects them) work, as in Claude Code's commit messages."""
    out = only("bash <<'EOF'\nrm -rf ~/x\nEOF\n")
    assert out["argv"] == ["rm", "-rf", "~/x"] and out["wrapped_by"] == ["bash <<"]
    assert argvs("sh <<EOF\nls\ncd /tmp && rm y\nEOF") == [["ls"], ["cd", "/tmp"], ["rm", "y"]]
    assert argvs("cat <<EOF > notes\nrm -rf /\nEOF") == [["cat"]]
    cmd = "git commit -m \"$(cat <<'EOF'\nfix: the thing\n\nBody.\nEOF\n)\""
    assert [c[:2] for c in argvs(cmd)] == [["cat"], ["git", "commit"]]
    assert argvs("python3 - <<\"PY\"\nprint(1)\nPY") == [["python3", "-"]]


def test_redirects() -> None:
    out = only("sudo tee /etc/hosts > /dev/null 2>&1 < in.txt", cwd="/srv/app")
    assert out["argv"] == ["tee", "/etc/hosts"]
    assert [(r["op"], r["target"], r["class"]) for r in out["redirects"]] == [
        (">", "/dev/null", "other"), (">&", "1", None), ("<", "in.txt", "project")]
    assert out["redirects"][2]["path"] == "/srv/app/in.txt"
    inner = parse("bash -c 'a; b' >> /tmp/log")["commands"]
    assert all(c["redirects"][0]["target"] == "/tmp/log" for c in inner)
    assert only("echo x &> ~/out")["redirects"][0]["class"] == "home"


def test_path_classes(proj: Path) -> None:
    home = str(Path(HOME))
    cmd = (f"cp src/app.py ./notes.txt ~/.bashrc $HOME/x /etc/passwd /tmp/t /var/tmp/v "
           f"/opt/thing /data/x {proj}/../elsewhere https://example.com/x plainword notes.txt "
           f"--output=/etc/out $VAR/x -r /")
    out = only(cmd, cwd=proj)
    got = [(p["arg"], p["class"]) for p in out["path_args"]]
    assert got == [
        ("src/app.py", "project"), ("./notes.txt", "project"), ("~/.bashrc", "home"),
        ("$HOME/x", "home"), ("/etc/passwd", "system"), ("/tmp/t", "temp"),
        ("/var/tmp/v", "temp"), ("/opt/thing", "system"), ("/data/x", "other"),
        (f"{proj}/../elsewhere", "temp" if str(proj).startswith("/tmp") else "other"),
        ("notes.txt", "project"), ("--output=/etc/out", "system"), ("$VAR/x", "other"),
        ("/", "system"),
    ]
    assert out["path_args"][2]["path"] == f"{home}/.bashrc"
    assert out["path_args"][0]["path"] == str(proj / "src" / "app.py")


def test_cd_moves_the_cwd_for_later_commands(proj: Path) -> None:
    commands = parse("cd /etc && rm ./passwd; (cd /tmp; rm ./a); rm ./b", cwd=proj)["commands"]
    paths = {c["argv"][1]: c["path_args"][0]["class"] for c in commands if c["argv"][0] == "rm"}
    assert paths == {"./passwd": "system", "./a": "temp", "./b": "system"}


def test_git_root_is_the_project(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "pkg").mkdir()
    out = only("cat ../README.md", cwd=repo / "pkg")
    assert out["path_args"][0]["class"] == "project"


def test_symlinks_are_resolved(proj: Path) -> None:
    (proj / "link").symlink_to("/etc")
    assert only("rm link/hosts", cwd=proj)["path_args"][0] == {
        "arg": "link/hosts", "path": "/etc/hosts", "class": "system"}


@pytest.mark.parametrize("command", [
    "[[ -f x ]] && rm y", "case $x in a) rm a;; esac", "time rm -rf x", "echo 'unterminated",
    "if then fi",
])
def test_unparsable_falls_back_to_split(command: str) -> None:
    out = parse(command)
    assert out["parse_error"]
    assert out["commands"], out
    assert all(isinstance(c["argv"], list) for c in out["commands"])


def test_fallback_still_unwraps() -> None:
    out = parse("time sudo rm -rf /")
    assert out["parse_error"] and out["commands"][-1]["argv"] == ["rm", "-rf", "/"]
    assert out["commands"][-1]["wrapped_by"] == ["time", "sudo"]


def test_empty_and_nested_too_deep() -> None:
    assert parse("") == {"commands": [], "parse_error": None}
    assert parse("   ") == {"commands": [], "parse_error": None}
    deep = "ls"
    for _ in range(12):
        deep = "eval " + json.dumps(deep)
    out = parse(deep)
    assert out["commands"] and out["commands"][0]["argv"][0] == "eval"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab /~.$'\"`\\|&;()<>{}[]!*#=-\n\tc-e")),
               max_size=60) | st.text(max_size=60))
def test_parse_never_raises(command: str) -> None:
    out = shell.parse(command, "/srv/app", HOME)
    assert set(out) == {"commands", "parse_error"}
    json.dumps(out)


# -- through the hook ----------------------------------------------------------------------


def test_policy_reads_shell_commands(hook: Any, root: PolicyRoot) -> None:
    """A policy sees input.watchdog.shell: `sudo bash -c '... rm -rf ~ ...'` is caught by argv,
    not by matching text."""
    root.add("rm.rego", rego_policy("cupcake.policies.rm", """
        deny contains {"rule_id": "RM-HOME", "reason": concat(" ", c.wrapped_by),
                       "severity": "HIGH"} if {
            some c in input.watchdog.shell.commands
            c.argv[0] == "rm"
            some p in c.path_args
            p["class"] == "home"
        }
        """, events=["PreToolUse"], tools=["Bash"]))
    cwd = str(root.path.parent)
    run = hook(bash("echo hi && sudo -u me bash -c 'cd /tmp; rm -rf ~/work'", cwd=cwd),
               policy_dir=root)
    assert run.hso["permissionDecision"] == "deny"
    assert run.hso["permissionDecisionReason"] == "sudo bash -c"
    assert hook(bash("rm -rf /tmp/work", cwd=cwd), policy_dir=root).json == {}
    other = claude_event("PreToolUse", tool_name="Write", cwd=cwd,
                         tool_input={"file_path": "x", "content": "rm -rf ~"})
    assert hook(other, policy_dir=root).json == {}


def _imports(env: dict[str, str], root: PolicyRoot, event: dict[str, Any]) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", "hook", "--harness", "claude",
         "--policy-dir", str(root.path)],
        input=json.dumps(event).encode(), capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in proc.stderr.decode().splitlines()
            if line.startswith("import time:") and "|" in line}


def test_bashlex_loads_only_for_policies_that_read_shell(
    env: dict[str, str], root: PolicyRoot
) -> None:
    """bashlex costs ~150 ms to import: it loads only when a routed scope's policies mention
    `watchdog` and `shell` (outside comments)."""
    root.add("plain.rego", rego_policy(
        "cupcake.policies.plain", "# not input.watchdog.shell\n"
        'deny contains {"rule_id": "R", "reason": "r", "severity": "HIGH"} if false',
        events=["PreToolUse"], tools=["Bash"]))
    event = bash("ls", cwd=str(root.path.parent))
    assert "bashlex" not in _imports(env, root, event)
    root.add("reads.rego", rego_policy(
        "cupcake.policies.reads",
        'deny contains {"rule_id": "S", "reason": "s", "severity": "HIGH"} if '
        "count(input.watchdog.shell.commands) > 5", events=["PreToolUse"], tools=["Bash"]))
    assert "bashlex" in _imports(env, root, event)

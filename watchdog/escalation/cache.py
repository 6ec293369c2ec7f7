"""The verdict cache: identical borderline actions are judged once, then answered from Redis.

"Identical" is decided by `canonical_action`, which keeps what a judge's verdict depends on (the
event, the tool, its normalized input, and the *kind* of directory it runs in) and drops what
only says who, when or where (session and tool-use ids, the transcript, the agent's own
`description` of a command, timeouts). `cache_key` hashes that together with everything else
that shapes a verdict (rubric, prompt version, model, policy bundle), behind a `v1:` prefix so a
change of this format is detectable, as STYLE §5 asks. The canonical action is only ever hashed:
it is a key, not what the judge is shown.

Choices, each made so that a false hit (two different actions sharing a verdict) is rarer than
a miss:

* **Shell commands** (`Bash`, `PowerShell`): whitespace outside quotes is collapsed, as the
  policies see it (`preprocess.normalize_whitespace`); then the cwd (for the classes below that
  are relativized) becomes `.` and the home dir `~`, but only where they stand as a whole path
  component, so `/home/u/p2/x` never matches a cwd of `/home/u/p`.
* **File paths** (`file_path`, `path`, `notebook_path` at any depth of `tool_input`, and the
  event's own `file_path`, `worktree_path`, `old_cwd`, `new_cwd`) are normalized lexically (no
  filesystem access): made relative to the cwd when they are inside it, so the same edit in two
  clones matches; otherwise absolute, with the home dir written `~` so two users match.
* **cwd class** instead of the cwd: `tmp` (`/tmp`, `/var/tmp`, the temp dir), `home` (the home
  dir itself), `project` (below the home dir), `system` (`/`, `/etc`, `/usr`, `/var`, ...),
  `other` (anything else, such as `/workspace` or `/opt/app` in a container), `unknown` (no
  absolute cwd). Paths are relativized for `project`, `tmp` and `other`, where the folder's
  name says nothing about the risk. For `system` the exact cwd is kept in the key and paths stay
  absolute: `rm passwd` in `/etc` is not `rm passwd` in `/usr/share/doc`.
* **Dropped keys**: in `tool_input`, `description` (the agent's own label, except for task
  tools where it is the content), `timeout` and `run_in_background`; at the top level, ids,
  paths to transcripts, `permission_mode`, `effort`, `duration_ms` and the like (`_IDENTITY_KEYS`),
  plus the fields preprocessing derives from the input. Every other top-level field is kept (a
  prompt, a tool response, an error), so events without a tool are keyed by their content.

Redis keys: `<prefix>verdict:<cache key>` (the verdict as JSON, with the configured TTL) and the
counters `<prefix>stats:cache_hits` and `<prefix>stats:cache_misses`. A lookup and its counter
update are one Lua call: one round trip, and exact counts under any number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, cast

import redis
from redis.commands.core import Script

from watchdog.escalation.redis_errors import redis_errors
from watchdog.preprocess import SHELL_TOOLS, normalize_whitespace

if TYPE_CHECKING:  # annotations only
    from watchdog.escalation.records import VerdictRecord


logger = logging.getLogger(__name__)

KEY_VERSION = "v1:"

CwdClass = Literal["project", "home", "tmp", "system", "other", "unknown"]

# Top-level fields that say who, when or where, never what: two runs of the same action differ
# in all of them. The last group is what watchdog itself adds to the input (preprocessing's
# fields derived from tool_input, `builtin_config`, `input.watchdog`), already covered.
_IDENTITY_KEYS = frozenset({
    "session_id", "transcript_path", "cwd", "prompt_id", "tool_use_id", "agent_id",
    "agent_type", "agent_transcript_path", "turn_id", "message_id", "task_id", "permission_mode",
    "permission_suggestions", "effort", "duration_ms", "background_tasks", "session_crons",
    "stop_hook_active", "index", "model",
    "resolved_file_path", "original_file_path", "is_symlink", "affected_parent_directories",
    "builtin_config", "watchdog",
    # Cursor: conversation and generation, the workspace, who and which version.
    "conversation_id", "generation_id", "workspace_roots", "cursor_version", "user_email",
    "is_background_agent",
    # Factory Droid: the camelCase spellings and its running counters.
    "sessionId", "transcriptPath", "permissionMode", "hookEventName", "tool_execution_count",
    "elapsed_time", "session_duration_ms", "message_count", "estimated_tokens", "has_images",
    # OpenCode: the call's ids and the raw (lower-case) tool and its args, kept normalized.
    "callID", "sessionID", "agent", "tool", "args",
})
_VOLATILE_INPUT_KEYS = frozenset({"description", "timeout", "run_in_background"})
# Tools whose `description` is what the tool does, not a label for it.
_DESCRIPTION_IS_CONTENT = frozenset({"TaskCreate", "TaskUpdate"})
_INPUT_PATH_KEYS = frozenset({"file_path", "path", "notebook_path"})
_EVENT_PATH_KEYS = frozenset({"file_path", "worktree_path", "old_cwd", "new_cwd"})
_SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "/Library", "/System", "/private",
)
_RELATIVIZED: frozenset[CwdClass] = frozenset({"project", "tmp", "other"})


@lru_cache(maxsize=1)
def _default_tmp_dirs() -> tuple[str, ...]:
    dirs = {"/tmp", "/var/tmp", tempfile.gettempdir()}
    dirs |= {os.path.realpath(d) for d in list(dirs)}
    return tuple(sorted(posixpath.normpath(d) for d in dirs))


def _inside(path: str, root: str) -> bool:
    """path is root or below it (both normalized and absolute)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def cwd_class(
    cwd: str, *, home: str | None = None, tmp_dirs: Sequence[str] | None = None
) -> CwdClass:
    """What kind of directory cwd is; see the module docstring. tmp wins over home and system."""
    if not cwd or not cwd.startswith("/"):
        return "unknown"
    cwd = posixpath.normpath(cwd)
    home = _home(home)
    tmps = _default_tmp_dirs() if tmp_dirs is None else tmp_dirs
    if any(_inside(cwd, posixpath.normpath(t)) for t in tmps):
        return "tmp"
    if home:
        if cwd == home:
            return "home"
        if _inside(cwd, home):
            return "project"
    if cwd == "/" or any(_inside(cwd, d) for d in _SYSTEM_DIRS):
        return "system"
    return "other"


def _home(home: str | None) -> str:
    """The normalized home dir, or "" when it is unknown or "/" (which would swallow everything)."""
    raw = os.path.expanduser("~") if home is None else home
    if not raw.startswith("/"):
        return ""
    norm = posixpath.normpath(raw)
    return "" if norm == "/" else norm


class _Paths:
    """Rewrites paths and commands for one event: cwd -> relative or `.`, home -> `~`."""

    def __init__(self, cwd: str, home: str, relativize: bool) -> None:
        self.cwd = posixpath.normpath(cwd) if cwd.startswith("/") else ""
        self.home = home
        self.relativize = relativize and self.cwd not in ("", "/")

    def path(self, raw: str) -> str:
        if self.home and (raw == "~" or raw.startswith("~/")):
            raw = self.home + raw[1:]
        if not raw.startswith("/"):
            if not self.cwd:
                return posixpath.normpath(raw)
            raw = posixpath.join(self.cwd, raw)
        path = posixpath.normpath(raw)
        if self.relativize and _inside(path, self.cwd):
            return posixpath.relpath(path, self.cwd)
        if self.home and _inside(path, self.home):
            return "~" + path[len(self.home):]
        return path

    def command(self, command: str) -> str:
        text = normalize_whitespace(command)
        if self.relativize:
            text = _replace_dir(text, self.cwd, ".")
        if self.home:
            text = _replace_dir(text, self.home, "~")
        return text


def _replace_dir(text: str, directory: str, by: str) -> str:
    """Replace directory where it stands as a whole path (not inside a longer name)."""
    pattern = rf"(?<![\w.~/-]){re.escape(directory)}(?=/|$|[\s'\";|&)<>`])"
    return re.sub(pattern, lambda _: by, text)


def _walk_input(value: Any, paths: _Paths) -> Any:
    """Sorted-key copy of a tool_input value with every path key normalized, at any depth."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            item = value[key]
            if key in _INPUT_PATH_KEYS and isinstance(item, str) and item:
                out[str(key)] = paths.path(item)
            else:
                out[str(key)] = _walk_input(item, paths)
        return out
    if isinstance(value, list | tuple):
        return [_walk_input(item, paths) for item in value]
    return value


def canonical_action(
    event: Mapping[str, Any],
    *,
    home: str | None = None,
    tmp_dirs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What makes two events "the same action" for a judge, as a JSON-ready dict.

    `event` is the hook payload (raw or preprocessed). `home` and `tmp_dirs` default to this
    user's; tests pass them to be independent of the machine.
    """
    raw_cwd = event.get("cwd")
    cwd = raw_cwd if isinstance(raw_cwd, str) else ""
    home_dir = _home(home)
    kind = cwd_class(cwd, home=home, tmp_dirs=tmp_dirs)
    paths = _Paths(cwd, home_dir, relativize=kind in _RELATIVIZED)
    tool = event.get("tool_name")
    action: dict[str, Any] = {
        "event": event.get("hook_event_name"),
        "tool": tool,
        "cwd_class": kind,
    }
    if kind == "system":
        action["cwd"] = paths.path(cwd)
    tool_input = event.get("tool_input")
    if isinstance(tool_input, Mapping):
        dropped = _VOLATILE_INPUT_KEYS
        if tool in _DESCRIPTION_IS_CONTENT:
            dropped = dropped - {"description"}
        kept = {k: v for k, v in tool_input.items() if k not in dropped}
        normalized = _walk_input(kept, paths)
        command = normalized.get("command")
        if tool in SHELL_TOOLS and isinstance(command, str):
            normalized["command"] = paths.command(command)
        action["input"] = normalized
    elif tool_input is not None:
        action["input"] = tool_input
    context: dict[str, Any] = {}
    for key in sorted(event, key=str):
        if key in _IDENTITY_KEYS or key in ("hook_event_name", "tool_name", "tool_input"):
            continue
        value = event[key]
        if key in _EVENT_PATH_KEYS and isinstance(value, str) and value:
            context[key] = paths.path(value)
        else:
            context[key] = _walk_input(value, paths)
    if context:
        action["context"] = context
    return action


def cache_key(
    event: Mapping[str, Any],
    rubric: str,
    prompt_version: str,
    model: str,
    bundle_hash: str,
    *,
    home: str | None = None,
    tmp_dirs: Sequence[str] | None = None,
) -> str:
    """`v1:` + sha256 of the canonical action and everything else a verdict depends on."""
    material = {
        "action": canonical_action(event, home=home, tmp_dirs=tmp_dirs),
        "rubric": rubric,
        "prompt_version": prompt_version,
        "model": model,
        "bundle_hash": bundle_hash,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return KEY_VERSION + hashlib.sha256(blob.encode("utf-8")).hexdigest()


# GET the verdict and count the outcome in one atomic step.
_GET_LUA = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('INCR', KEYS[2])
else
  redis.call('INCR', KEYS[3])
end
return value
"""


class VerdictCache:
    """Verdicts by cache key, in Redis with a TTL, plus hit and miss counters.

    A `ttl_s` of 0 or less turns caching off: `put` stores nothing, `get` always misses.
    """

    def __init__(self, redis_client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis_client
        self.prefix = prefix
        self.ttl_s = int(ttl_s)
        self._hits = f"{prefix}stats:cache_hits"
        self._misses = f"{prefix}stats:cache_misses"
        self._get: Script = redis_client.register_script(_GET_LUA)

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}verdict:{key}"

    def get(self, key: str) -> VerdictRecord | None:
        """The cached verdict, or None; counts a hit or a miss."""
        with redis_errors("reading the verdict cache"):
            value = self._get(keys=[self.redis_key(key), self._hits, self._misses])
        if value is None:
            return None
        try:
            verdict = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            verdict = None
        if not isinstance(verdict, dict):  # (Cupcake's watchdog caches its own answer shape)
            # Not ours or damaged: judge again rather than trust it; put() will overwrite it.
            logger.warning("cache_entry_invalid", extra={"cache_key": key[:16]})
            return None
        return cast("VerdictRecord", verdict)

    def put(self, key: str, verdict: Mapping[str, Any]) -> None:
        """Store a verdict for ttl_s seconds (overwriting any older one)."""
        if self.ttl_s <= 0:
            return
        blob = json.dumps(dict(verdict), sort_keys=True, separators=(",", ":"))
        with redis_errors("writing the verdict cache"):
            self.redis.set(self.redis_key(key), blob, ex=self.ttl_s)

    def stats(self) -> dict[str, Any]:
        """{"hits": int, "misses": int, "hit_rate": float in [0, 1] (0.0 before any lookup)}."""
        with redis_errors("reading cache statistics"):
            hits_raw, misses_raw = self.redis.mget([self._hits, self._misses])
        hits, misses = int(hits_raw or 0), int(misses_raw or 0)
        total = hits + misses
        return {"hits": hits, "misses": misses, "hit_rate": hits / total if total else 0.0}

"""Per-session taints: what a session has been exposed to and done, for `input.watchdog.session`.

Three facts, each alone ordinary, are dangerous together (the "lethal trifecta"): the session
has read untrusted content (a web page, a search result, MCP output, a file outside the
project), it has touched secrets (a .env file, keys, credential stores, `printenv`), and it can
act outside the machine (network tools, pushes, publishes, deployments). A policy can escalate
or deny when all three meet, e.g.
`input.watchdog.session.untrusted_content; input.watchdog.session.secrets_touched` on a `curl`.

Taints are recorded from PostToolUse (the tool really ran) into a small JSON file per session in
the state dir, under a lock, and only for bundles whose policies read `input.watchdog.session`
(the manifest's `reads_session`), so other users pay nothing. The classification is by tool,
path and command word, deliberately simple and documented here; it is a signal for policies,
not a verdict.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from watchdog.events import Event
from watchdog.statefile import locked_json, session_path

SESSIONS_DIR = "sessions"
KEEP = 5  # most recent reasons kept per taint
TAINTS = ("untrusted_content", "secrets_touched", "external_side_effects")

_UNTRUSTED_TOOLS = frozenset({"WebFetch", "WebSearch"})
_READ_TOOLS = frozenset({"Read", "Grep", "Glob", "NotebookRead"})
_SECRET_PATH = re.compile(
    r"(^|/)(\.env(\.[\w.-]+)?|\.netrc|\.npmrc|\.pypirc|\.pgpass|credentials(\.json)?|"
    r"[^/]*\.(pem|key|p12|pfx|kdbx)|id_(rsa|dsa|ecdsa|ed25519)|secrets?\.(ya?ml|json|toml))$"
    r"|/\.(ssh|aws|gnupg|docker|kube)/"
)
_SECRET_COMMANDS = frozenset({"printenv", "env", "security", "keychain"})
_SECRET_PHRASES = ("print-access-token", "get-secret-value", "configure get", "kubectl get secret",
                   "vault kv get", "vault read", "op read", "gh auth token")
_NETWORK_COMMANDS = frozenset({"curl", "wget", "scp", "sftp", "ssh", "rsync", "nc", "ncat",
                               "netcat", "socat", "telnet", "ftp", "http", "https", "xh"})
_SIDE_EFFECT_PHRASES = ("git push", "npm publish", "yarn publish", "pnpm publish", "twine upload",
                        "cargo publish", "gem push", "docker push", "kubectl apply",
                        "kubectl delete", "terraform apply", "terraform destroy", "gh release",
                        "gh pr create", "gh issue create", "aws s3 cp", "aws s3 sync",
                        "gsutil cp", "helm install", "helm upgrade")
_SEPARATORS = re.compile(r"[;&|()`]|\$\(")


def path_for(state_dir: str, session_id: str) -> str:
    return session_path(state_dir, SESSIONS_DIR, session_id)


def _inside(path: str, root: str) -> bool:
    root = root.rstrip("/") + "/"
    return (path.rstrip("/") + "/").startswith(root)


def _words(command: str) -> list[str]:
    """First word of every command segment (after sudo/env-style prefixes)."""
    firsts = []
    for segment in _SEPARATORS.split(command):
        words = [w for w in segment.split() if "=" not in w.split("/")[0]]
        while words and words[0] in ("sudo", "env", "nohup", "time", "timeout", "xargs"):
            words = words[1:]
            while words and (words[0].startswith("-") or words[0][:1].isdigit()):
                words = words[1:]
        if words:
            firsts.append(os.path.basename(words[0]))
    return firsts


def classify(event: Event) -> dict[str, str]:
    """Which taints this (completed) tool call adds, each with a short reason. It reads the
    normalized action, so a Cursor shell call or a Droid `Execute` taints like Claude's Bash."""
    found: dict[str, str] = {}
    action = event.norm
    tool = action.tool or ""
    path = action.paths[0] if action.paths else None
    if tool in _UNTRUSTED_TOOLS or action.tool_class == "mcp":
        found["untrusted_content"] = f"{tool} output"
    if tool in _READ_TOOLS and path:
        full = os.path.normpath(os.path.join(event.cwd, path))
        if not _inside(full, event.cwd):
            found["untrusted_content"] = f"{tool} of {full} (outside the project)"
        if _SECRET_PATH.search(full):
            found["secrets_touched"] = f"{tool} of {full}"
    command = action.command
    if action.tool_class == "shell" and isinstance(command, str):
        lowered = " ".join(command.lower().split())
        firsts = _words(lowered)
        if any(w in _SECRET_COMMANDS for w in firsts) or any(
            p in lowered for p in _SECRET_PHRASES
        ) or any(_SECRET_PATH.search(w) for w in lowered.split()):
            found["secrets_touched"] = f"Bash: {command[:80]}"
        if any(w in _NETWORK_COMMANDS for w in firsts) or any(
            p in lowered for p in _SIDE_EFFECT_PHRASES
        ):
            found["external_side_effects"] = f"Bash: {command[:80]}"
    return found


def record(state_dir: str, event: Event, now: float | None = None) -> dict[str, str]:
    """Add this post-tool event's taints to its session; returns what was added."""
    if event.norm.kind != "post_tool":
        return {}
    found = classify(event)
    if not found:
        return found
    now = time.time() if now is None else now
    with locked_json(path_for(state_dir, event.session_id), {}) as state:
        for taint, reason in found.items():
            reasons = state.get(taint)
            if not isinstance(reasons, list):  # missing, or damaged by hand: start afresh
                reasons = state[taint] = []
            reasons.append({"reason": reason, "ts": now})
            del reasons[:-KEEP]
    return found


def load(state_dir: str, session_id: str) -> dict[str, Any]:
    """`input.watchdog.session`: a boolean per taint plus its most recent reasons."""
    try:
        with open(path_for(state_dir, session_id), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):  # missing, unreadable or not JSON: no taints known
        data = {}
    if not isinstance(data, dict):
        data = {}
    out: dict[str, Any] = {}
    for taint in TAINTS:
        reasons = data.get(taint)
        if not isinstance(reasons, list):  # a damaged file never breaks evaluation
            reasons = []
        out[taint] = bool(reasons)
        out[f"{taint}_because"] = [r.get("reason") for r in reasons if isinstance(r, dict)]
    out["all_three"] = all(out[t] for t in TAINTS)
    return out

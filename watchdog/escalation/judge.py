"""The LLM judge: render a rubric's prompt for one escalated event, call the model through
litellm, and turn the reply into a Verdict.

This is the only module that imports litellm (about 3 s of imports), and only RQ workers import
it. The boundary is strict in both directions:

* Out: the prompt comes from a rubric file in `prompts/` (format in prompts/README.md). The
  judge is reasoning-blind: it gets the user's prompts and the tool call, never the agent's own
  text. Everything from the agent or a tool is fenced in tags carrying a random per-call nonce,
  so fenced content cannot close its fence.
* In: every litellm exception is mapped here to `JudgeTransient` (RQ retries the job with
  backoff) or `JudgeError` (a configuration problem: the message says what to fix), keeping
  the cause. litellm's own retries are off (`num_retries=0`): retrying is RQ's job.

A call that answers but not with a verdict is retried once on the same model with a corrective
message; a second bad answer yields `Verdict.unknown(...)`, never "looks fine".
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Prices come from the table bundled with the installed litellm, not fetched from GitHub at
# import: no network call at worker start (offline it costs seconds of retries), and budgets
# do not change under a running worker. Set LITELLM_LOCAL_MODEL_COST_MAP=False to fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402 - after the environment default above
import litellm  # noqa: E402
from litellm import exceptions as llm_errors  # noqa: E402

from watchdog.config import Settings  # noqa: E402
from watchdog.errors import JudgeError, JudgeTransient  # noqa: E402
from watchdog.escalation.rubric import (  # noqa: E402
    Rubric,
    clip,
    correction,
    load_rubric,
    pick_rubric,
    prompt_version,
    render,
)
from watchdog.escalation.verdict import Verdict, parse_verdict  # noqa: E402

litellm.suppress_debug_info = True  # otherwise litellm prints help banners on stdout per error

# Worst-case pricing for a model litellm has no price for (a proxy alias, a new model): priced
# like the most expensive mainstream model (Claude Opus: $15 / $75 per million tokens), so a
# budget still binds. A model litellm prices at 0 (a local ollama model) stays free.
UNPRICED_USD_PER_1K_INPUT = 0.015
UNPRICED_USD_PER_1K_OUTPUT = 0.075
# litellm counts Claude and other non-OpenAI prompts with an OpenAI tokenizer, which undercounts
# them by up to about a quarter; the worst case pads the prompt count by this factor.
PROMPT_TOKEN_MARGIN = 1.3

_KEY_VARS = {
    "anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "azure": "AZURE_API_KEY",
    "gemini": "GEMINI_API_KEY", "mistral": "MISTRAL_API_KEY", "groq": "GROQ_API_KEY",
    "openrouter": "OPENROUTER_API_KEY", "deepseek": "DEEPSEEK_API_KEY", "xai": "XAI_API_KEY",
}


@dataclass(frozen=True)
class JudgeResult:
    """What one `judge()` call produced. `cost_usd` is litellm's price of every answered call;
    `priced` is False when litellm had no price for a model that answered (cost_usd then
    leaves that call out, and a budget should keep its worst-case reservation). `errors` are
    the failures of models tried before the one that answered, for the caller to log."""

    verdict: Verdict
    model: str
    cost_usd: float
    latency_ms: int
    attempts: int
    prompt_version: str
    rubric: str
    priced: bool = True
    errors: tuple[str, ...] = ()


def worst_case_cost(model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int) -> float:
    """USD for one call that uses all of `max_tokens`: what a budget reserves before calling.
    A model litellm cannot price is charged UNPRICED_USD_PER_1K_INPUT/OUTPUT. `judge()` may make
    two calls per model (the corrective retry), plus one per fallback tried."""
    try:
        prompt_tokens = int(litellm.token_counter(model=model, messages=list(messages)))
    except Exception:  # an unknown tokenizer: about 3 characters a token is generous
        prompt_tokens = len(json.dumps(list(messages), default=str)) // 3
    prompt_tokens = int(prompt_tokens * PROMPT_TOKEN_MARGIN) + 1
    try:
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=max_tokens)
        return float(prompt_usd) + float(completion_usd)
    except Exception:  # litellm has no price for this model
        return (prompt_tokens * UNPRICED_USD_PER_1K_INPUT
                + max_tokens * UNPRICED_USD_PER_1K_OUTPUT) / 1000


def _call_cost(response: Any, model: str) -> float | None:
    """litellm's price of an answered call; None when it has none for this model."""
    for kwargs in ({}, {"model": model}):
        try:
            return float(litellm.completion_cost(completion_response=response, **kwargs))
        except Exception:
            continue
    return None


# -- errors ------------------------------------------------------------------------------------


def _key_var(model: str) -> str:
    provider = model.split("/", 1)[0] if "/" in model else ""
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:
        missing = []
    if missing:
        return f"{missing[-1]} is not set: set it to your API key"
    var = _KEY_VARS.get(provider, "the provider's API key variable")
    return f"set {var} to a valid key"


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = re.sub(r"^litellm\.\w+:\s*", "", text)
    return clip(text, 200) or type(exc).__name__


def map_exception(exc: BaseException, model: str, settings: Settings) -> JudgeError:
    """The JudgeError (JudgeTransient when worth retrying) for an exception from a model call.
    The first matching row wins, so subclasses come before their bases."""
    status = getattr(exc, "status_code", None)
    code = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
    where = settings.judge_api_base or "the provider"
    if isinstance(exc, llm_errors.ContextWindowExceededError):
        return JudgeError(f"the judge prompt is too long for {model}: use a model with a larger "
                          "context window in WATCHDOG_JUDGE_MODEL")
    if isinstance(exc, llm_errors.ContentPolicyViolationError):
        return JudgeError(f"{model} refused the judge prompt under its content policy: use "
                          "another WATCHDOG_JUDGE_MODEL for this rubric")
    if isinstance(exc, llm_errors.AuthenticationError):
        return JudgeError(f"{model} refused the API key ({code}): {_key_var(model)}, or change "
                          "WATCHDOG_JUDGE_MODEL")
    if isinstance(exc, llm_errors.PermissionDeniedError):
        return JudgeError(f"the API key has no access to {model} ({code}): use a key that does, "
                          "or change WATCHDOG_JUDGE_MODEL")
    if isinstance(exc, llm_errors.NotFoundError):
        return JudgeError(f"{model} was not found at {where} ({code}): check "
                          "WATCHDOG_JUDGE_MODEL (a litellm model string such as "
                          "anthropic/claude-haiku-4-5) and WATCHDOG_JUDGE_API_BASE")
    if isinstance(exc, llm_errors.RateLimitError):
        return JudgeTransient(f"{model} is rate-limited ({code}): the job is retried with "
                              "backoff; raise the provider's limits if it persists")
    if isinstance(exc, llm_errors.Timeout | httpx.TimeoutException):
        return JudgeTransient(f"{model} did not answer within {settings.judge_timeout_s:g} s: "
                              "the job is retried; raise WATCHDOG_JUDGE_TIMEOUT_S if it "
                              "keeps happening")
    if isinstance(exc, llm_errors.APIConnectionError | httpx.TransportError):
        return JudgeTransient(f"cannot reach {model} at {where}: {_detail(exc)}. The job is "
                              "retried; check the network and WATCHDOG_JUDGE_API_BASE")
    if isinstance(exc, llm_errors.InternalServerError | llm_errors.ServiceUnavailableError
                  | llm_errors.BadGatewayError) or (isinstance(status, int) and status >= 500):
        # litellm reports a refused connection as a 500 too, hence the detail and the hint.
        return JudgeTransient(f"{model} at {where} failed ({code}: {_detail(exc)}). The job is "
                              "retried with backoff; check WATCHDOG_JUDGE_API_BASE if it "
                              "persists")
    if isinstance(exc, llm_errors.BadRequestError | llm_errors.UnprocessableEntityError):
        return JudgeError(f"{model} rejected the judge request ({code}): {_detail(exc)}. Check "
                          "WATCHDOG_JUDGE_MODEL and WATCHDOG_JUDGE_API_BASE")
    if isinstance(exc, llm_errors.BudgetExceededError):
        return JudgeError(f"litellm's own budget stopped the call to {model}: {_detail(exc)}")
    if isinstance(exc, Warning):  # raised because warnings are errors (-W error, a test run)
        return JudgeError(f"a dependency warned during the call to {model} and warnings are "
                          f"errors in this process ({code}: {_detail(exc)}). Not a key or model "
                          "problem: filter that warning (pyproject's filterwarnings) or run "
                          "without -W error")
    return JudgeError(f"the judge call to {model} failed ({code}): {_detail(exc)}. Check "
                      "WATCHDOG_JUDGE_MODEL, WATCHDOG_JUDGE_API_BASE and the API key")


# -- the call ----------------------------------------------------------------------------------


def _complete(model: str, messages: list[dict[str, str]], settings: Settings,
              **extra: Any) -> Any:
    try:
        return litellm.completion(
            model=model,
            messages=messages,
            temperature=0,
            max_tokens=extra.pop("max_tokens", settings.judge_max_tokens),
            timeout=settings.judge_timeout_s,
            api_base=settings.judge_api_base,
            num_retries=0,  # retries are RQ's job, with backoff across worker restarts
            drop_params=True,  # models that reject temperature (o-series) still answer
            **extra,
        )
    except Exception as exc:
        raise map_exception(exc, model, settings) from exc


def complete_text(model: str, messages: list[dict[str, str]], settings: Settings, *,
                  api_key: str | None = None, max_tokens: int | None = None
                  ) -> tuple[str, float, bool]:
    """One model call with the judge's settings and error mapping, for callers that bring
    their own prompt and parse the reply themselves (Cupcake's watchdog): (reply text, USD
    cost, whether litellm priced the call; cost is 0.0 when it did not). Raises JudgeError
    (JudgeTransient when worth retrying); makes no corrective retry and tries no fallback."""
    extra: dict[str, Any] = {}
    if api_key is not None:
        extra["api_key"] = api_key
    if max_tokens is not None:
        extra["max_tokens"] = max_tokens
    response = _complete(model, messages, settings, **extra)
    cost = _call_cost(response, model)
    return _reply_text(response), cost or 0.0, cost is not None


def _reply_text(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def judge(payload: Mapping[str, Any], settings: Settings, rubric: str | None = None,
          prompts_dir: Path | None = None) -> JudgeResult:
    """Judge one escalated event (payload already redacted): see the module docstring.

    Raises JudgeTransient when the primary failed transiently and no fallback answered (RQ
    retries the job), or when the corrective retry failed transiently; JudgeError for a
    permanent failure of the primary (a key, a model name: the message says which).
    """
    started = time.monotonic()
    chosen = load_rubric(rubric or pick_rubric(payload), prompts_dir)
    version = prompt_version(chosen)
    messages = render(chosen, payload)
    attempts, cost, priced = 0, 0.0, True
    errors: list[str] = []
    transient: JudgeTransient | None = None
    for index, model in enumerate((settings.judge_model, *settings.judge_fallbacks)):
        attempts += 1
        try:
            response = _complete(model, messages, settings)
        except JudgeTransient as exc:
            transient = exc
            errors.append(f"{model}: {exc}")
            continue
        except JudgeError as exc:
            if index == 0:
                raise
            errors.append(f"{model}: {exc}")  # a broken fallback: try the next one
            continue
        verdict, extra_attempts, extra_cost, all_priced = _verdict_from(
            response, model, messages, chosen, settings)
        attempts += extra_attempts
        cost += extra_cost
        priced = priced and all_priced
        return JudgeResult(
            verdict=verdict, model=model, cost_usd=cost,
            latency_ms=int((time.monotonic() - started) * 1000), attempts=attempts,
            prompt_version=version, rubric=chosen.name, priced=priced, errors=tuple(errors))
    # Only reached after a transient failure of the primary (a permanent one raised above).
    raise JudgeTransient(f"every judge model failed: {'; '.join(errors)}") from transient


def _verdict_from(response: Any, model: str, messages: list[dict[str, str]], rubric: Rubric,
                  settings: Settings) -> tuple[Verdict, int, float, bool]:
    """Parse an answer, retrying once with a corrective message: (verdict, extra calls, cost,
    whether every answered call was priced)."""
    first_cost = _call_cost(response, model)
    cost, priced = first_cost or 0.0, first_cost is not None
    try:
        return parse_verdict(_reply_text(response)), 0, cost, priced
    except JudgeError as exc:
        problem = str(exc)
    fix = correction(rubric, problem)
    retry = _complete(model, [*messages, {"role": "user", "content": fix}], settings)
    second_cost = _call_cost(retry, model)
    cost += second_cost or 0.0
    priced = priced and second_cost is not None
    try:
        return parse_verdict(_reply_text(retry)), 1, cost, priced
    except JudgeError as exc:
        return Verdict.unknown(f"judge output was not a verdict: {exc}"), 1, cost, priced

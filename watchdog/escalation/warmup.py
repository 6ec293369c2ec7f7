"""Warm litellm in a worker's main process before RQ forks work horses from it.

litellm's import is only half its start-up: the first cost estimate loads a tokenizer and the
first completion imports the HTTP client stack and the provider's modules, about 1.1 s in all.
A forked horse keeps what the parent had loaded, so the parent runs one of each against the
fake judge on 127.0.0.1, with a random token. Nothing leaves the machine, and a failure here only
costs speed, never a worker.
"""

from __future__ import annotations

import logging
import secrets

from watchdog.config import Settings

logger = logging.getLogger(__name__)
_FLAVOURS = (("openai/watchdog-warmup", "/v1"), ("anthropic/watchdog-warmup", ""))


def warm_up(settings: Settings) -> None:
    import litellm

    from watchdog.escalation import judge
    from watchdog.escalation.fake_judge import FakeJudge

    messages = [{"role": "user", "content": "warm-up"}]
    try:
        judge.worst_case_cost(settings.judge_model, messages, 1)
        token = secrets.token_hex(16)
        with FakeJudge(token=token) as fake:
            for model, suffix in _FLAVOURS:
                litellm.completion(model=model, messages=messages, api_base=fake.url + suffix,
                                   api_key=token, max_tokens=8, timeout=5, num_retries=0)
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation
        logger.warning("litellm warm-up failed (%s); jobs will pay its first-use cost", exc)

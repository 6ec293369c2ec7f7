"""The fake judge server: real HTTP on 127.0.0.1 in the OpenAI and Anthropic formats, a token
on every request, scripted replies, the request log, cross-process control and the CLI."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import close_asyncio_loop
from watchdog.escalation.fake_judge import (
    DEFAULT_VERDICT,
    HANG,
    Delay,
    FakeJudge,
    Status,
    Text,
    as_reply,
    main,
)

TOKEN = "fake-judge-token-42"
VERDICT = {"decision": "warn", "reason": "Posts a file to an unknown host.", "confidence": 0.7}
REPO = Path(__file__).resolve().parent.parent

# litellm 1.106 builds a pydantic schema on its first completion, and pydantic warns about it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem':UserWarning")


@pytest.fixture(scope="module", autouse=True)
def close_litellm_event_loop() -> Iterator[None]:
    """litellm's synchronous calls make asyncio install an event loop in the main thread and
    never close it (a ResourceWarning at exit); close it once this module is done."""
    yield
    close_asyncio_loop()


@pytest.fixture
def fake() -> Iterator[FakeJudge]:
    with FakeJudge(token=TOKEN) as server:
        yield server


def request(url: str, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None,
            timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP request (no client library in the way): status, headers, parsed body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        text = raw.decode()
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        conn.close()


def chat(url: str, headers: dict[str, str], model: str = "gpt-4.1-mini") -> tuple[int, Any]:
    status, _, body = request(url, "POST", "/v1/chat/completions",
                              {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                              headers)
    return status, body


def messages(url: str, headers: dict[str, str], **extra: Any) -> tuple[int, dict[str, str], Any]:
    return request(url, "POST", "/v1/messages",
                   {"model": "claude-haiku-4-5", "max_tokens": 100, "system": "judge",
                    "messages": [{"role": "user", "content": "hi"}], **extra}, headers)


BEARER = {"Authorization": f"Bearer {TOKEN}"}
API_KEY = {"x-api-key": TOKEN}


# -- protocol ------------------------------------------------------------------------------------


def test_binds_loopback_only(fake: FakeJudge) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert int(fake.url.rsplit(":", 1)[1]) > 0


def test_openai_response_shape(fake: FakeJudge) -> None:
    fake.push(VERDICT)
    status, body = chat(fake.url, BEARER)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4.1-mini"
    [choice] = body["choices"]
    assert json.loads(choice["message"]["content"]) == VERDICT
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_anthropic_response_shape(fake: FakeJudge) -> None:
    fake.push(Text("plain words"))
    status, headers, body = messages(fake.url, API_KEY)
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "plain words"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"}, {"x-api-key": "nope"}, {"Authorization": TOKEN},
    {"x-api-key": ""},
], ids=["none", "wrong-bearer", "wrong-key", "no-bearer-prefix", "empty"])
def test_requires_the_token(fake: FakeJudge, headers: dict[str, str]) -> None:
    """No token, no answer: 401 in each provider's error format, and no scripted reply used."""
    fake.push(VERDICT)
    status, body = chat(fake.url, headers)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, _, body = messages(fake.url, headers)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = chat(fake.url, BEARER)  # the scripted reply is still there
    assert status == 200 and json.loads(body["choices"][0]["message"]["content"]) == VERDICT
    assert [r.status for r in fake.requests] == [401, 401, 200]


def test_the_token_is_never_recorded(fake: FakeJudge) -> None:
    chat(fake.url, BEARER)
    messages(fake.url, {"x-api-key": TOKEN, "X-Custom": f"also {TOKEN}"})
    assert len(fake.requests) == 2
    for rec in fake.requests:
        assert "authorization" not in rec.headers and "x-api-key" not in rec.headers
        assert TOKEN not in json.dumps(rec.headers)
    _, _, log = request(fake.url, "GET", "/_control/requests", headers=BEARER)
    assert TOKEN not in json.dumps(log)


def test_request_log(fake: FakeJudge) -> None:
    chat(fake.url, BEARER, model="gpt-4.1-mini")
    messages(fake.url, API_KEY, temperature=0)
    first, second = fake.requests
    assert (first.method, first.path, first.model, first.status) == (
        "POST", "/v1/chat/completions", "gpt-4.1-mini", 200)
    assert (second.path, second.model, second.body["temperature"]) == (
        "/v1/messages", "claude-haiku-4-5", 0)
    assert second.headers["content-type"] == "application/json"


def test_paths(fake: FakeJudge) -> None:
    status, _, body = request(fake.url, "POST", "/chat/completions",
                              {"model": "m", "messages": []}, BEARER)
    assert status == 200 and body["object"] == "chat.completion"
    status, _, body = request(fake.url, "POST", "/v1/completions", {"model": "m"}, BEARER)
    assert status == 404 and "/v1/messages" in body["error"]
    status, _, _ = request(fake.url, "GET", "/v1/models", headers=BEARER)
    assert status == 404


def test_body_that_is_not_json_is_a_400(fake: FakeJudge) -> None:
    host, port = fake.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/v1/messages", body=b"{oops", headers=API_KEY)
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["type"] == "error"
    finally:
        conn.close()


# -- scripting -----------------------------------------------------------------------------------


def test_fifo_then_default(fake: FakeJudge) -> None:
    fake.push(VERDICT, times=2)
    fake.push("garbage")
    texts = [chat(fake.url, BEARER)[1]["choices"][0]["message"]["content"] for _ in range(4)]
    assert [json.loads(t) for t in texts[:2]] == [VERDICT, VERDICT]
    assert texts[2] == "garbage"
    assert json.loads(texts[3]) == DEFAULT_VERDICT
    fake.set_default(Text("always this"))
    assert chat(fake.url, BEARER)[1]["choices"][0]["message"]["content"] == "always this"


@pytest.mark.parametrize("code", [429, 500, 503, 529])
def test_status_replies(fake: FakeJudge, code: int) -> None:
    fake.push(Status(code))
    fake.push(Status(code))
    status, headers, body = request(fake.url, "POST", "/v1/chat/completions",
                                    {"model": "m", "messages": []}, BEARER)
    assert status == code and body["error"]["message"]
    assert ("retry-after" in headers) == (code == 429)
    status, _, body = messages(fake.url, API_KEY)
    assert status == code and body["type"] == "error"
    assert body["error"]["type"] in ("rate_limit_error", "api_error", "overloaded_error")


def test_retry_after_value(fake: FakeJudge) -> None:
    fake.push(Status(429, retry_after=7))
    _, headers, _ = request(fake.url, "POST", "/chat/completions", {"model": "m"}, BEARER)
    assert headers["retry-after"] == "7"


def test_delay_then_answer(fake: FakeJudge) -> None:
    """A delay answers late but answers: a client with a shorter timeout gives up first."""
    fake.push(Delay(0.2, then=VERDICT))
    status, body = chat(fake.url, BEARER)
    assert status == 200 and json.loads(body["choices"][0]["message"]["content"]) == VERDICT
    fake.push(Delay(5))
    with pytest.raises(TimeoutError):
        request(fake.url, "POST", "/v1/messages", {"model": "m"}, API_KEY, timeout=0.3)


def test_hang_is_released_by_stop() -> None:
    """A hanging request never gets an answer; stop() drops it and returns."""
    server = FakeJudge(token=TOKEN).start()
    server.push(HANG)
    outcome: list[BaseException | tuple[int, Any]] = []

    def call() -> None:
        try:
            outcome.append(chat(server.url, BEARER))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline_polls = 500
    while not server.requests and deadline_polls:  # wait until the request has arrived
        deadline_polls -= 1
        threading.Event().wait(0.01)
    assert server.requests and server.requests[0].status == 0
    server.stop()
    client.join(timeout=10)
    assert not client.is_alive()
    assert isinstance(outcome[0], http.client.RemoteDisconnected | ConnectionError)


def test_streaming_through_litellm(fake: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a client streams, it gets server-sent events that litellm reassembles."""
    litellm = pytest.importorskip("litellm")
    monkeypatch.setenv("OPENAI_API_KEY", TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TOKEN)
    for model, base in (("openai/gpt-4.1-mini", fake.url + "/v1"),
                        ("anthropic/claude-haiku-4-5", fake.url)):
        fake.push(VERDICT)
        stream = litellm.completion(model=model, messages=[{"role": "user", "content": "hi"}],
                                    api_base=base, stream=True, num_retries=0, timeout=5)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert json.loads(text) == VERDICT
    assert [r.body.get("stream") for r in fake.requests] == [True, True]


@pytest.mark.parametrize(("obj", "expected"), [
    ({"decision": "allow", "reason": "r", "confidence": 1}, Text(json.dumps(
        {"decision": "allow", "reason": "r", "confidence": 1}))),
    ("raw", Text("raw")),
    ({"text": "raw"}, Text("raw")),
    ({"status": 429, "retry_after": 2}, Status(429, 2.0)),
    ({"status": 500}, Status(500)),
    ({"delay": 1.5}, Delay(1.5)),
    ({"delay": 1, "then": {"status": 503}}, Delay(1.0, Status(503))),
    ({"hang": True}, HANG),
    (HANG, HANG),
], ids=["verdict", "str", "text", "429", "500", "delay", "delay-then", "hang", "sentinel"])
def test_reply_forms(obj: Any, expected: Any) -> None:
    assert as_reply(obj) == expected


@pytest.mark.parametrize("obj", [{"hang": False}, {}, 3, None, ["x"]])
def test_bad_reply_forms(obj: Any) -> None:
    with pytest.raises(ValueError, match="not a fake-judge reply"):
        as_reply(obj)


def test_token_is_required() -> None:
    with pytest.raises(ValueError, match="token"):
        FakeJudge(token="")


def test_url_before_start() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = FakeJudge(token=TOKEN).url


# -- cross-process control -----------------------------------------------------------------------


def test_control_needs_the_token(fake: FakeJudge) -> None:
    assert request(fake.url, "POST", "/_control/script", [VERDICT])[0] == 401
    assert request(fake.url, "GET", "/_control/requests",
                   headers={"x-api-key": "nope"})[0] == 401
    assert request(fake.url, "POST", "/_control/script", [VERDICT],
                   {"Authorization": "Bearer nope"})[0] == 401


def test_control_script_and_requests(fake: FakeJudge) -> None:
    status, _, body = request(fake.url, "POST", "/_control/script",
                              [VERDICT, {"status": 503}, "junk"], API_KEY)
    assert (status, body) == (200, {"queued": 3})
    assert json.loads(chat(fake.url, BEARER)[1]["choices"][0]["message"]["content"]) == VERDICT
    assert chat(fake.url, BEARER)[0] == 503
    assert chat(fake.url, BEARER)[1]["choices"][0]["message"]["content"] == "junk"
    status, _, log = request(fake.url, "GET", "/_control/requests", headers=BEARER)
    assert status == 200 and [r["status"] for r in log] == [200, 503, 200]
    assert log[0]["path"] == "/v1/chat/completions" and log[0]["model"] == "gpt-4.1-mini"
    status, _, body = request(fake.url, "POST", "/_control/script",
                              {"replies": [], "default": {"text": "d"}, "reset": True}, BEARER)
    assert (status, body) == (200, {"queued": 0}) and fake.requests == []
    assert chat(fake.url, BEARER)[1]["choices"][0]["message"]["content"] == "d"


def test_control_rejects_bad_scripts(fake: FakeJudge) -> None:
    status, _, body = request(fake.url, "POST", "/_control/script", [{"nope": 1}], BEARER)
    assert status == 400 and "not a fake-judge reply" in body["error"]
    status, _, _ = request(fake.url, "POST", "/_control/script", "junk", BEARER)
    assert status == 400


# -- CLI -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--port", "x"], ["--verdict", "{oops"], ["--verdict", "3"],
                                  ["--nope"]], ids=["port", "json", "reply", "flag"])
def test_cli_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert "watchdog fake-judge" in capsys.readouterr().err


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    """`watchdog fake-judge` prints its URL first, answers with --verdict, and exits 0 on
    Ctrl-C."""
    code = ("import sys; from watchdog.escalation.fake_judge import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--token", TOKEN, "--verdict", json.dumps(VERDICT),
         "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, body = chat(url, BEARER)
        assert status == 200 and json.loads(body["choices"][0]["message"]["content"]) == VERDICT
        assert chat(url, {"Authorization": "Bearer nope"})[0] == 401
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and TOKEN not in err

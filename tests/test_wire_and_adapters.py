"""The provider adapters through the real SDKs, against the loopback wire server.

Each adapter plays the scripted model's seed conversation (list_files ->
write_file -> share -> report_decision -> finish) plain and streamed; every fault the
server can inject is covered; no error ever shows the key.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import traceback
from typing import Any, Callable

import pytest

from osqr_nb.agents.agent import SYSTEM_PROMPT
from osqr_nb.agents.tools import TOOL_SPECS
from osqr_nb.models.anthropic import AnthropicModel, messages_to_anthropic
from osqr_nb.models.base import Reply, ToolCall, Usage
from osqr_nb.models.errors import (AuthError, BadToolCall, ProviderDown, ProviderError, ProviderTimeout,
                                   ProviderUsage, Truncated)
from osqr_nb.models.openai import OpenAIChatModel, OpenAIResponsesModel
from osqr_nb.models.scripted import SCHEMA_SQL
from osqr_nb.wire import FAULT_HEADER, WireServer

KEY = "test-key-not-secret"
BRIEF = "# Task: Refactor the database schema\nid: schema\nkind: refactor\n\nUsers and sessions."
SEED_TOOLS = ["list_files", "write_file", "share", "report_decision", "finish"]
ADAPTERS = ["anthropic", "responses", "chat"]


@pytest.fixture(scope="module")
def server():
    with WireServer(retry_after=0.01, stall_seconds=3) as wire:
        yield wire


@pytest.fixture(autouse=True)
def fresh(server):
    server.faults.clear()
    server.requests.clear()
    yield


def make(kind: str, server: WireServer, **options: Any):
    options = {"api_key": KEY, "timeout": 2.0, "max_retries": 2, **options}
    if kind == "anthropic":
        return AnthropicModel("claude-wire-test", base_url=server.base_url, **options)
    model = OpenAIResponsesModel if kind == "responses" else OpenAIChatModel
    return model("gpt-wire-test", base_url=server.openai_base_url, **options)


def run(coro, timeout: float = 15):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def ask(kind: str, server: WireServer, **options: Any) -> Reply:
    """One turn of the seed conversation."""
    model = make(kind, server, **options)
    try:
        return await model.complete(SYSTEM_PROMPT, [{"role": "user", "content": BRIEF}], TOOL_SPECS)
    finally:
        await model.aclose()


def failure(kind: str, server: WireServer, **options: Any) -> ProviderError:
    """The error a turn ends in; whatever it is, neither it nor its traceback shows the key."""
    with pytest.raises(ProviderError) as caught:
        run(ask(kind, server, **options))
    error = caught.value
    shown = "".join(traceback.format_exception(error)) + repr(error) + repr(vars(error))
    assert KEY not in shown
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return error


async def tool_loop(model) -> tuple[list[str], list[Reply], list[dict[str, Any]]]:
    """Drive the scripted seed conversation, feeding tool results back as the agent would."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": BRIEF}]
    names: list[str] = []
    replies: list[Reply] = []
    for _ in range(8):
        reply = await model.complete(SYSTEM_PROMPT, messages, TOOL_SPECS)
        replies.append(reply)
        messages.append({"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls})
        for call in reply.tool_calls:
            names.append(call.name)
            if call.name == "finish":
                return names, replies, messages
            result = "chosen: UUID for user IDs, separate sessions table" if call.name == "report_decision" else "ok"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return names, replies, messages


# --- the tool loop, plain and streamed ------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_seed_tool_loop(server, kind, stream):
    pieces: list[tuple[str, str]] = []

    async def play():
        model = make(kind, server, stream=stream, on_delta=lambda k, p: pieces.append((k, p)))
        try:
            return await tool_loop(model)
        finally:
            await model.aclose()

    names, replies, messages = run(play())
    assert names == SEED_TOOLS
    assert [r.stop_reason for r in replies] == ["tool_use"] * len(SEED_TOOLS)
    write = replies[1].tool_calls[0]
    assert write.arguments == {"path": "db/schema.sql", "content": SCHEMA_SQL}   # survives JSON and SSE
    assert replies[-1].tool_calls[0].arguments["decisions"] == ["UUID for user IDs, separate sessions table"]
    for reply in replies:
        assert isinstance(reply.usage, ProviderUsage)
        assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    # the agent resends its conversation, so later turns read the earlier ones from the cache
    assert all(r.usage.cache_read_tokens > 0 for r in replies[1:])
    assert all(r.usage.cache_read_tokens + r.usage.cache_write_tokens <= r.usage.input_tokens for r in replies)
    if kind == "anthropic":     # each turn adds to the cached prefix
        assert all(r.usage.cache_write_tokens > 0 for r in replies[1:])
    assert len(server.requests) == len(SEED_TOOLS) and all(r["body"].get("stream", False) == stream for r in server.requests)
    if stream:
        streamed = "".join(p for k, p in pieces if k == "tool_args")
        assert '"db/schema.sql"' in streamed and "CREATE TABLE users" in streamed
    else:
        assert pieces == []


def test_usage_sums_keep_cache_tokens():
    total = Usage() + ProviderUsage(10, 2, 4, 3) + ProviderUsage(5, 1, 5, 0)
    assert isinstance(total, ProviderUsage)
    assert (total.input_tokens, total.output_tokens, total.cache_read_tokens, total.cache_write_tokens) == (15, 3, 9, 3)


def test_consecutive_tool_results_share_one_user_turn(server):
    """Two calls in one reply: both results and the nudge after them go into one user turn."""
    calls = [ToolCall("call_a", "list_files", {"path": "."}), ToolCall("call_b", "read_file", {"path": "x"})]
    messages = [{"role": "user", "content": BRIEF},
                {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_a", "content": "a.py"},
                {"role": "tool", "tool_call_id": "call_b", "content": ""},
                {"role": "user", "content": "Continue with the tools."}]
    turns = messages_to_anthropic(messages)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]

    async def send():
        model = make("anthropic", server)
        try:
            return await model.complete("system", messages, TOOL_SPECS)
        finally:
            await model.aclose()
    run(send())     # the server refuses what the real API refuses (unanswered tool_use, empty text)
    sent = server.requests[-1]["body"]["messages"]
    assert sent[2]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_server_refuses_what_the_api_refuses(server):
    """A tool_use left unanswered is a 400, which is our plain ProviderError, not ProviderDown."""
    calls = [ToolCall("call_a", "list_files", {"path": "."})]
    messages = [{"role": "user", "content": BRIEF}, {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "user", "content": "no results here"}]

    async def send():
        model = make("anthropic", server)
        try:
            await model.complete("system", messages, TOOL_SPECS)
        finally:
            await model.aclose()
    with pytest.raises(ProviderError) as caught:
        run(send())
    assert caught.value.status_code == 400 and not isinstance(caught.value, ProviderDown)
    assert "tool_result" in str(caught.value)


# --- faults: retried by the SDK when one-shot, ours when they persist ------------------------

@pytest.mark.parametrize("fault", ["429", "500", "529"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_one_shot_fault_is_retried_by_the_sdk(server, kind, fault):
    server.faults.append(fault)
    reply = run(ask(kind, server))
    assert reply.tool_calls[0].name == "list_files"
    assert [r["fault"] for r in server.requests] == [fault, None]
    assert [r["retry"] for r in server.requests] == ["0", "1"]


@pytest.mark.parametrize("fault,words", [("429", "rate limited"), ("500", "HTTP 500"), ("529", "overloaded")])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_persistent_fault_is_provider_down(server, kind, fault, words):
    error = failure(kind, server, max_retries=1, default_headers={FAULT_HEADER: fault})
    assert type(error) is ProviderDown and error.status_code == int(fault)
    assert words in str(error) and "switch model" in str(error)
    assert len(server.requests) == 2     # the first try and the SDK's one retry


def test_429_carries_retry_after(server):
    import httpx
    response = httpx.post(server.base_url + "/v1/messages", headers={"x-api-key": KEY, FAULT_HEADER: "429"},
                          json={"model": "m", "max_tokens": 10, "messages": []})
    assert response.status_code == 429 and response.headers["retry-after"] == "0.01"
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("kind", ADAPTERS)
def test_refused_key_is_auth_error_without_the_key(server, kind):
    error = failure(kind, server, default_headers={FAULT_HEADER: "401"})
    assert isinstance(error, AuthError) and error.status_code == 401
    assert "[redacted key]" in str(error) and KEY not in str(error)     # the server echoed it
    assert len(server.requests) == 1     # not retried


@pytest.mark.parametrize("kind", ADAPTERS)
def test_one_shot_stall_times_out_then_retry_succeeds(server, kind):
    server.faults.append("stall")
    reply = run(ask(kind, server, timeout=0.2, max_retries=1))
    assert reply.tool_calls[0].name == "list_files" and len(server.requests) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_stall_is_provider_timeout(server, kind, stream):
    """No answer within the timeout (retries are shown by the one-shot test above)."""
    fault = "stall-stream" if stream else "stall"
    error = failure(kind, server, stream=stream, timeout=0.2, max_retries=0, default_headers={FAULT_HEADER: fault})
    assert isinstance(error, ProviderTimeout) and "0.2 s" in str(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_malformed_tool_call_is_bad_tool_call(server, kind, stream):
    server.faults.append("malformed")
    error = failure(kind, server, stream=stream)
    assert isinstance(error, BadToolCall)
    assert error.tool_name == "list_files" and "not a JSON object" in str(error)
    assert "'path'" in error.raw_arguments
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_cut_off_tool_call_is_truncated(server, kind, stream):
    server.faults.append("max_tokens")
    error = failure(kind, server, stream=stream)
    assert isinstance(error, Truncated) and error.max_tokens == 8192
    assert error.reply.stop_reason == "max_tokens" and error.reply.usage.output_tokens > 0
    assert "raise max_tokens" in str(error)


@pytest.mark.parametrize("kind", ADAPTERS)
def test_small_max_tokens_cuts_the_reply(server, kind):
    """The server honours the request's own limit, as a provider does."""
    error = failure(kind, server, max_tokens=3)
    assert isinstance(error, Truncated) and error.max_tokens == 3 and error.reply.usage.output_tokens == 3


PROSE = "The schema needs a sessions table keyed by user id. " * 4


class ProseModel:
    """Answers in prose only, to see a cut-off text reply."""

    name = "prose"

    async def complete(self, system, messages, tools) -> Reply:
        return Reply(text=PROSE, stop_reason="end_turn")


@pytest.fixture(scope="module")
def prose_server():
    with WireServer(ProseModel()) as wire:
        yield wire


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ADAPTERS)
def test_cut_off_text_is_a_max_tokens_reply(prose_server, kind, stream):
    """Text cut short is still usable: a reply with stop_reason max_tokens, not an error."""
    prose_server.faults.append("max_tokens")
    reply = run(ask(kind, prose_server, stream=stream))
    assert reply.stop_reason == "max_tokens" and reply.tool_calls == []
    assert PROSE.startswith(reply.text) and 0 < len(reply.text) < len(PROSE)


# --- keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,variable", [("anthropic", "ANTHROPIC_API_KEY"), ("responses", "OPENAI_API_KEY"),
                                           ("chat", "OPENAI_API_KEY")])
def test_missing_key_names_the_variable(monkeypatch, kind, variable):
    monkeypatch.delenv(variable, raising=False)
    factory: Callable[[], Any] = {
        "anthropic": lambda: AnthropicModel("claude-wire-test"),
        "responses": lambda: OpenAIResponsesModel("gpt-wire-test"),
        "chat": lambda: OpenAIChatModel("gpt-wire-test"),
    }[kind]
    with pytest.raises(AuthError, match=variable) as caught:
        factory()
    assert "scripted model" in str(caught.value)


def test_chat_model_needs_no_key_for_a_local_server(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reply = run(ask("chat", server, api_key=None))
    assert reply.tool_calls[0].name == "list_files"


# --- the server itself -----------------------------------------------------------------------

def test_unknown_fault_lists_the_known_ones(server):
    import httpx
    response = httpx.post(server.openai_base_url + "/chat/completions",
                          headers={"authorization": f"Bearer {KEY}", FAULT_HEADER: "teapot"},
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and "malformed" in response.json()["error"]["message"]


def test_command_line_prints_its_base_url():
    process = subprocess.Popen([sys.executable, "-m", "osqr_nb.wire"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:")
        import httpx
        response = httpx.post(line + "/v1/messages", headers={"x-api-key": KEY},
                              json={"model": "m", "max_tokens": 100,
                                    "messages": [{"role": "user", "content": BRIEF}]})
        assert json.loads(response.text)["content"][0]["name"] == "list_files"
    finally:
        process.terminate()
        process.wait(timeout=10)

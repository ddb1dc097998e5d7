"""Claude through the official `anthropic` SDK (Messages API with tool use).

The SDK does the HTTP, the retries (429, 5xx, 529, timeouts, honouring
retry-after) and the SSE parsing; this module maps our neutral messages to
Anthropic's content blocks and back, marks the prompt for caching, and turns
the SDK's errors into ours (`errors.py`), none of which can show the key.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import anthropic
import httpx2

from .base import Reply, ToolCall, ToolSpec
from .errors import (ProviderError, ProviderUsage, bad_tool_call, call_fields, connection_error,
                     resolve_key, status_error, timeout_error, truncated)

PROVIDER = "anthropic"
STOP_REASONS = {"end_turn": "end_turn", "stop_sequence": "end_turn", "tool_use": "tool_use",
                "max_tokens": "max_tokens", "model_context_window_exceeded": "max_tokens"}
STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500,
                       "authentication_error": 401, "permission_error": 403}
EPHEMERAL = {"type": "ephemeral"}


def tools_to_anthropic(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The content blocks of one neutral message; empty text is left out (the API refuses it)."""
    if message["role"] == "tool":
        result = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
        return [{**result, "content": message["content"]} if message.get("content") else result]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}] if message.get("content") else []
    for call_id, name, arguments in map(call_fields, message.get("tool_calls") or []):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def messages_to_anthropic(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages as alternating turns: tool results (and any text after them) share one user turn."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        blocks = _blocks(message)
        role = "assistant" if message["role"] == "assistant" else "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def mark_for_cache(system: str, turns: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cache breakpoints after the system prompt and after the last turn.

    An agent resends its whole conversation every turn, so each call reads the
    previous turns from the cache and pays full price only for the new ones.
    """
    system_blocks = [{"type": "text", "text": system, "cache_control": EPHEMERAL}] if system else []
    turns = copy.deepcopy(turns)
    if turns and turns[-1]["content"]:
        turns[-1]["content"][-1]["cache_control"] = EPHEMERAL
    return system_blocks, turns


def usage_from_anthropic(usage: Any) -> ProviderUsage:
    """Anthropic counts cached input apart from `input_tokens`; ours counts it in (genai-prices' way)."""
    read = usage.cache_read_input_tokens or 0
    write = usage.cache_creation_input_tokens or 0
    return ProviderUsage((usage.input_tokens or 0) + read + write, usage.output_tokens or 0, read, write)


class AnthropicModel:
    """A `ModelClient` for Claude models."""

    provider = PROVIDER

    def __init__(self, model_id: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 8192, timeout: float = 300.0, max_retries: int = 2,
                 stream: bool = False, on_delta: Callable[[str, str], None] | None = None,
                 cache: bool = True, default_headers: dict[str, str] | None = None) -> None:
        self.name = model_id
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.stream = stream
        self.on_delta = on_delta      # (kind "text" | "tool_args", piece) as tokens arrive, when streaming
        self.cache = cache
        self._key = resolve_key(PROVIDER, api_key)
        self._client = anthropic.AsyncAnthropic(api_key=self._key, base_url=base_url, timeout=timeout,
                                                max_retries=max_retries, default_headers=default_headers)

    async def aclose(self) -> None:
        """Close the connection pool (the client is unusable afterwards)."""
        await self._client.close()

    def __repr__(self) -> str:
        return f"AnthropicModel({self.model_id!r})"

    async def complete(self, system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> Reply:
        request = self._request(system, messages, tools)
        try:
            message = await (self._streamed(request) if self.stream else self._client.messages.create(**request))
        except (anthropic.AnthropicError, httpx2.TimeoutException, httpx2.TransportError) as exc:
            raise self._translate(exc) from None
        return self._reply(message)

    def _request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> dict[str, Any]:
        turns = messages_to_anthropic(messages)
        system_blocks: Any = system
        if self.cache:
            system_blocks, turns = mark_for_cache(system, turns)
        request: dict[str, Any] = {"model": self.model_id, "max_tokens": self.max_tokens, "messages": turns}
        if system_blocks:
            request["system"] = system_blocks
        if tools:
            request["tools"] = tools_to_anthropic(tools)
        return request

    async def _streamed(self, request: dict[str, Any]) -> Any:
        """Stream through the SDK's helper, telling `on_delta` about each piece as it arrives."""
        call = ("", "")
        async with self._client.messages.stream(**request) as stream:
            try:
                async for event in stream:
                    if event.type == "content_block_start" and event.content_block.type == "tool_use":
                        call = (event.content_block.id, event.content_block.name)
                    elif event.type == "text":
                        self._tell("text", event.text)
                    elif event.type == "input_json":
                        self._tell("tool_args", event.partial_json)
            except ValueError as exc:   # the SDK could not parse the streamed tool arguments
                if "tool parameter JSON" not in str(exc):
                    raise
                raw = str(exc).partition("JSON: ")[2]
                raise bad_tool_call(PROVIDER, self.model_id, (call[0], call[1], raw), None, [self._key]) from None
            return await stream.get_final_message()

    def _tell(self, kind: str, piece: str) -> None:
        if self.on_delta is not None and piece:
            self.on_delta(kind, piece)

    def _reply(self, message: Any) -> Reply:
        text = "".join(block.text for block in message.content if block.type == "text")
        uses = [block for block in message.content if block.type == "tool_use"]
        stop = STOP_REASONS.get(message.stop_reason or "end_turn", message.stop_reason)
        reply = Reply(text, [ToolCall(b.id, b.name, b.input) for b in uses if isinstance(b.input, dict)],
                      stop, usage_from_anthropic(message.usage))
        if stop == "max_tokens" and message.content and message.content[-1].type == "tool_use":
            raise truncated(PROVIDER, self.model_id, reply, self.max_tokens)
        for block in uses:
            if not isinstance(block.input, dict):
                raw = block.input if isinstance(block.input, str) else repr(block.input)
                raise bad_tool_call(PROVIDER, self.model_id, (block.id, block.name, raw), reply, [self._key])
        return reply

    def _translate(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
            return timeout_error(PROVIDER, self.model_id, self.timeout)
        if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
            return connection_error(PROVIDER, self.model_id)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status < 400:   # an error event inside a stream that had started fine
                status = STREAM_ERROR_STATUS.get(exc.type or "", 500)
            detail = f"{exc.type or 'error'}: {exc.api_message or exc.message}"
            return status_error(PROVIDER, self.model_id, status, detail, [self._key])
        return ProviderError(f"{PROVIDER} model {self.model_id!r}: {type(exc).__name__}", provider=PROVIDER,
                             model=self.model_id)

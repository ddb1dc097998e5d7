"""OpenAI models through the official `openai` SDK.

Two adapters, because the APIs differ where it matters: `OpenAIResponsesModel`
speaks the Responses API, the only one that serves OpenAI's Codex family;
`OpenAIChatModel` speaks Chat Completions with tools, which OpenAI-compatible
servers (Ollama, vLLM, LM Studio, OpenRouter) reached by `base_url` implement.
The SDK does the HTTP, retries and SSE; this module maps messages and replies
and turns the SDK's errors into ours (`errors.py`), none of which shows the key.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

import httpx2
import openai

from .base import Reply, ToolCall, ToolSpec
from .errors import (KEY_VARIABLES, AuthError, ProviderDown, ProviderError, ProviderUsage, bad_tool_call,
                     call_fields, connection_error, resolve_key, status_error, timeout_error, truncated)

RawCall = tuple[str, str, str]     # (call id, tool name, arguments as the model wrote them)
_fallback_ids = itertools.count(1)


def _parse_arguments(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_detail(exc: openai.APIError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return f"{exc.code or exc.type or 'error'}: {body.get('message') or exc.message}"


class _OpenAIBase:
    """What both OpenAI adapters share: the client, the key, finishing a reply, errors."""

    provider = "openai"

    def __init__(self, model_id: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 8192, timeout: float = 300.0, max_retries: int = 2,
                 stream: bool = False, on_delta: Callable[[str, str], None] | None = None,
                 default_headers: dict[str, str] | None = None) -> None:
        self.name = model_id
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.stream = stream
        self.on_delta = on_delta      # (kind "text" | "tool_args", piece) as tokens arrive, when streaming
        self._key = self._resolve_key(api_key, base_url)
        self._client = openai.AsyncOpenAI(api_key=self._key, base_url=base_url, timeout=timeout,
                                          max_retries=max_retries, default_headers=default_headers)

    async def aclose(self) -> None:
        """Close the connection pool (the client is unusable afterwards)."""
        await self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"

    def _resolve_key(self, api_key: str | None, base_url: str | None) -> str:
        return resolve_key("openai", api_key)

    async def complete(self, system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> Reply:
        try:
            text, calls, stop, usage = await self._call(system, messages, tools)
        except (openai.OpenAIError, httpx2.TimeoutException, httpx2.TransportError) as exc:
            raise self._translate(exc) from None
        return self._finish(text, calls, stop, usage)

    async def _call(self, system: str, messages: list[dict[str, Any]],
                    tools: list[ToolSpec]) -> tuple[str, list[RawCall], str, ProviderUsage]:
        raise NotImplementedError

    def _finish(self, text: str, calls: list[RawCall], stop: str, usage: ProviderUsage) -> Reply:
        """The reply, unless a tool call was cut off (Truncated) or is not a JSON object (BadToolCall)."""
        parsed = [(call, _parse_arguments(call[2])) for call in calls]
        reply = Reply(text, [ToolCall(c[0], c[1], args) for c, args in parsed if args is not None], stop, usage)
        if stop == "max_tokens" and calls:
            raise truncated(self.provider, self.model_id, reply, self.max_tokens)
        for call, arguments in parsed:
            if arguments is None:
                raise bad_tool_call(self.provider, self.model_id, call, reply, [self._key])
        return reply

    def _tell(self, kind: str, piece: str | None) -> None:
        if self.on_delta is not None and piece:
            self.on_delta(kind, piece)

    def _translate(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
            return timeout_error(self.provider, self.model_id, self.timeout)
        if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
            return connection_error(self.provider, self.model_id)
        if isinstance(exc, openai.APIStatusError):
            return status_error(self.provider, self.model_id, exc.status_code, _error_detail(exc), [self._key])
        if isinstance(exc, openai.APIError):   # an error event inside a stream that had started fine
            return status_error(self.provider, self.model_id, 500, _error_detail(exc), [self._key])
        return ProviderError(f"{self.provider} model {self.model_id!r}: {type(exc).__name__}",
                             provider=self.provider, model=self.model_id)


# --- Responses API ---------------------------------------------------------------------------

def tools_to_responses(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
             "strict": False} for t in tools]


def messages_to_responses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages as Responses input items: tool calls and their outputs are items of their own."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": message["tool_call_id"],
                          "output": message.get("content") or ""})
            continue
        if message.get("content"):
            items.append({"role": message["role"], "content": message["content"]})
        for call_id, name, arguments in map(call_fields, message.get("tool_calls") or []):
            items.append({"type": "function_call", "call_id": call_id, "name": name,
                          "arguments": json.dumps(arguments)})
    return items


def usage_from_responses(usage: Any) -> ProviderUsage:
    if usage is None:
        return ProviderUsage()
    details = usage.input_tokens_details
    return ProviderUsage(usage.input_tokens, usage.output_tokens, getattr(details, "cached_tokens", 0) or 0,
                         getattr(details, "cache_write_tokens", 0) or 0)


def read_response(response: Any) -> tuple[str, list[RawCall], str, ProviderUsage]:
    text = "".join(part.text for item in response.output if item.type == "message"
                   for part in item.content if part.type == "output_text")
    calls = [(item.call_id, item.name, item.arguments) for item in response.output if item.type == "function_call"]
    reason = getattr(response.incomplete_details, "reason", None)
    if response.status == "incomplete" and reason == "max_output_tokens":
        stop = "max_tokens"
    else:
        stop = "tool_use" if calls else "end_turn"
    return text, calls, stop, usage_from_responses(response.usage)


class OpenAIResponsesModel(_OpenAIBase):
    """A `ModelClient` for OpenAI's own models (GPT, o-series, the Codex family) via the Responses API.

    Requests are stateless (`store=False`): the agent resends its conversation
    each turn, so nothing needs to be kept on OpenAI's side.
    """

    async def _call(self, system: str, messages: list[dict[str, Any]],
                    tools: list[ToolSpec]) -> tuple[str, list[RawCall], str, ProviderUsage]:
        request: dict[str, Any] = {"model": self.model_id, "input": messages_to_responses(messages),
                                   "max_output_tokens": self.max_tokens, "store": False}
        if system:
            request["instructions"] = system
        if tools:
            request["tools"] = tools_to_responses(tools)
        if not self.stream:
            return read_response(await self._client.responses.create(**request))
        return read_response(await self._streamed(request))

    async def _streamed(self, request: dict[str, Any]) -> Any:
        """The final response of a stream (completed or incomplete), telling `on_delta` as pieces arrive."""
        final = None
        stream = await self._client.responses.create(**request, stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                self._tell("text", event.delta)
            elif event.type == "response.function_call_arguments.delta":
                self._tell("tool_args", event.delta)
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
            elif event.type in ("response.failed", "error"):
                raise self._stream_failure(event)
        if final is None:
            raise ProviderDown(f"openai model {self.model_id!r}: the stream ended without a final response",
                               provider=self.provider, model=self.model_id)
        return final

    def _stream_failure(self, event: Any) -> ProviderError:
        error = getattr(getattr(event, "response", None), "error", None) or event
        detail = f"{getattr(error, 'code', None) or 'error'}: {getattr(error, 'message', '')}"
        return status_error(self.provider, self.model_id, 500, detail, [self._key])


# --- Chat Completions ------------------------------------------------------------------------

def tools_to_chat(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def messages_to_chat(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": message["tool_call_id"],
                        "content": message.get("content") or ""})
            continue
        entry: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        calls = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                 for call_id, name, args in map(call_fields, message.get("tool_calls") or [])]
        if calls:
            entry["tool_calls"] = calls
            entry["content"] = entry["content"] or None
        out.append(entry)
    return out


def usage_from_chat(usage: Any) -> ProviderUsage:
    if usage is None:
        return ProviderUsage()
    details = usage.prompt_tokens_details
    return ProviderUsage(usage.prompt_tokens, usage.completion_tokens,
                         getattr(details, "cached_tokens", 0) or 0, getattr(details, "cache_write_tokens", 0) or 0)


def _chat_stop(finish_reason: str | None, calls: list[RawCall]) -> str:
    """Our stop reason; some compatible servers say "stop" even when they called tools."""
    if finish_reason == "length":
        return "max_tokens"
    return "tool_use" if calls else "end_turn"


def _call_id(given: str | None) -> str:
    """The server's call id, or one of ours: some compatible servers send none."""
    return given or f"call_osqr_{next(_fallback_ids)}"


class OpenAIChatModel(_OpenAIBase):
    """A `ModelClient` for any server that speaks Chat Completions with tools.

    A local server (Ollama, vLLM, LM Studio) needs no key: with a `base_url`
    and no key a placeholder is sent. `max_tokens_field` is "max_tokens" (what
    compatible servers know) or "max_completion_tokens" (what OpenAI prefers).
    """

    def __init__(self, model_id: str, *, provider: str = "openai", max_tokens_field: str = "max_tokens",
                 **kwargs: Any) -> None:
        self.provider = provider
        self.max_tokens_field = max_tokens_field
        super().__init__(model_id, **kwargs)

    def _resolve_key(self, api_key: str | None, base_url: str | None) -> str:
        try:
            return resolve_key("openai", api_key)
        except AuthError:
            if base_url:
                return "no-key-needed"
            raise AuthError(f"no API key: set {KEY_VARIABLES['openai']} (or pass api_key=...), give the "
                            "base_url of a local server, or run offline with the scripted model",
                            provider=self.provider) from None

    def _request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model_id, "messages": messages_to_chat(system, messages),
                                   self.max_tokens_field: self.max_tokens}
        if tools:
            request["tools"] = tools_to_chat(tools)
        return request

    async def _call(self, system: str, messages: list[dict[str, Any]],
                    tools: list[ToolSpec]) -> tuple[str, list[RawCall], str, ProviderUsage]:
        request = self._request(system, messages, tools)
        if self.stream:
            return await self._streamed(request)
        completion = await self._client.chat.completions.create(**request)
        if not completion.choices:
            raise ProviderDown(f"{self.provider} model {self.model_id!r}: the reply had no choices",
                               provider=self.provider, model=self.model_id)
        choice = completion.choices[0]
        calls = [(_call_id(c.id), c.function.name, c.function.arguments or "")
                 for c in choice.message.tool_calls or [] if c.type == "function"]
        return (choice.message.content or "", calls, _chat_stop(choice.finish_reason, calls),
                usage_from_chat(completion.usage))

    async def _streamed(self, request: dict[str, Any]) -> tuple[str, list[RawCall], str, ProviderUsage]:
        """Accumulate the chunks: text pieces, tool calls by index, the finish reason, usage last."""
        text: list[str] = []
        slots: dict[int, list[str]] = {}
        finish, usage = None, None
        stream = await self._client.chat.completions.create(**request, stream=True,
                                                            stream_options={"include_usage": True})
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                if choice.delta.content:
                    text.append(choice.delta.content)
                    self._tell("text", choice.delta.content)
                for delta in choice.delta.tool_calls or []:
                    self._add_call_delta(slots.setdefault(delta.index, ["", "", ""]), delta)
        calls = [(_call_id(s[0]), s[1], s[2]) for _, s in sorted(slots.items())]
        return "".join(text), calls, _chat_stop(finish, calls), usage_from_chat(usage)

    def _add_call_delta(self, slot: list[str], delta: Any) -> None:
        slot[0] = slot[0] or (delta.id or "")
        if delta.function is not None:
            slot[1] = slot[1] or (delta.function.name or "")   # some servers repeat the name in every chunk
            if delta.function.arguments:
                slot[2] += delta.function.arguments
                self._tell("tool_args", delta.function.arguments)


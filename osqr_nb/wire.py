"""A loopback server that speaks the providers' wire protocols.

It answers POST /v1/messages (Anthropic), POST /v1/responses and
POST /v1/chat/completions (OpenAI), plain or streamed as server-sent events,
from a `ModelClient` (the scripted model by default). The offline demo and the
tests point the official SDKs at it, so every SDK code path (parsing, SSE,
retries, timeouts, errors) runs for real without a network.

Each wire format has one small function per direction: request -> neutral
messages, neutral reply -> JSON body, neutral reply -> SSE events.

Faults are injected on request, either per request with the header
`x-osqr-fault: NAME` (every request carrying it, retries included, so the
fault persists) or once each from `server.faults`, a queue consumed one
request at a time (so a retry succeeds):

    401           the key is refused; the error echoes the key it was sent, the
                  worst a provider could do, so tests can prove our errors scrub it
    429           rate limited, with `retry-after`
    500           internal server error
    529           overloaded (Anthropic's overloaded_error)
    stall         no answer until the client gives up (sleeps past its timeout)
    stall-stream  streams: headers and one event, then silence; else as stall
    malformed     the first tool call's arguments are not valid JSON
    max_tokens    the reply is cut off half way, in the middle of a tool call

Token counts are estimates (four characters a token) of what was on the wire.
Prompt caching is simulated: Anthropic requests cache up to their last
`cache_control` breakpoint, OpenAI requests cache automatically; a later
request starting with a cached prefix reports it as cache reads.

Run `python -m osqr_nb.wire [--port N]` for a standalone server, or in-process:

    with WireServer() as server:
        AsyncAnthropic(base_url=server.base_url, api_key="...")
        AsyncOpenAI(base_url=server.openai_base_url, api_key="...")
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .loopback import LoopbackServer
from .models.base import ModelClient, Reply, ToolCall, ToolSpec
from .models.scripted import ScriptedModel

FAULT_HEADER = "x-osqr-fault"
FAULTS = ("401", "429", "500", "529", "stall", "stall-stream", "malformed", "max_tokens")
DEFAULT_MAX_TOKENS = 4096
_ids = itertools.count(1)

Neutral = tuple[str, list[dict[str, Any]], list[ToolSpec]]
Event = tuple[str | None, dict[str, Any]]     # (SSE event name, data)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


def tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _chunks(text: str, size: int = 24) -> list[str]:
    """Pieces of a text as a stream sends them; several, so that accumulation is exercised."""
    return [text[i:i + size] for i in range(0, len(text), size)]


# --- the reply on its way to the wire --------------------------------------------------------

@dataclass
class Draft:
    """A reply with tool arguments as JSON text, so that faults can break or cut them."""

    text: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)   # (id, name, arguments JSON)
    stop_reason: str = "end_turn"     # end_turn | tool_use | max_tokens
    input_tokens: int = 0             # all input tokens, cached ones included
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0


def draft_from_reply(reply: Reply) -> Draft:
    calls = [(c.id, c.name, json.dumps(c.arguments)) for c in reply.tool_calls]
    output = reply.usage.output_tokens or tokens(reply.text + "".join(a for _, _, a in calls))
    stop = "tool_use" if calls else (reply.stop_reason if reply.stop_reason != "tool_use" else "end_turn")
    return Draft(reply.text, calls, stop, output_tokens=max(1, output))


def break_arguments(draft: Draft) -> Draft:
    """Malformed: the first call's arguments as a Python literal, a classic model slip."""
    if not draft.calls:
        return replace(draft, text=draft.text + " {'unterminated': ")
    call_id, name, arguments = draft.calls[0]
    broken = repr(json.loads(arguments))
    return replace(draft, calls=[(call_id, name, broken), *draft.calls[1:]])


def cut_off(draft: Draft, max_tokens: int, chars: int | None = None) -> Draft:
    """The reply as a model that ran out of tokens leaves it: text and arguments cut short."""
    budget = chars if chars is not None else max_tokens * 4
    text = draft.text[:budget]
    left = budget - len(text)
    calls = []
    for call_id, name, arguments in draft.calls:
        if left <= 0:
            break
        calls.append((call_id, name, arguments[:left]))
        left -= len(arguments)
    return replace(draft, text=text, calls=calls, stop_reason="max_tokens",
                   output_tokens=min(draft.output_tokens, max_tokens))


def forced_cut(draft: Draft, max_tokens: int) -> Draft:
    """The max_tokens fault: cut half way, which for a tool call is inside its arguments."""
    size = len(draft.text) + sum(len(a) for _, _, a in draft.calls)
    return cut_off(draft, max_tokens, chars=max(1, size // 2))


class PromptCache:
    """Remembers recent prompt prefixes, to report cache writes and reads as a provider would."""

    def __init__(self, size: int = 256) -> None:
        self.prefixes: dict[str, None] = {}    # an ordered set: the oldest go first, as entries expire
        self.size = size

    def account(self, key: str, blocks: list[str], breakpoint: int | None) -> tuple[int, int, int]:
        """(all input tokens, cache-read tokens, cache-write tokens) of one request."""
        total = tokens("".join(blocks))
        if not breakpoint:
            return total, 0, 0
        prefix = key + "".join(blocks[:breakpoint])
        cached = max((p for p in self.prefixes if prefix.startswith(p)), key=len, default=key)
        self.prefixes[prefix] = None
        if len(self.prefixes) > self.size:
            del self.prefixes[next(iter(self.prefixes))]
        read = tokens(cached[len(key):])
        return total, read, tokens(prefix[len(key):]) - read


# --- Anthropic Messages API ------------------------------------------------------------------

def _text_of(content: Any) -> str:
    """Text of a string or of a list of content blocks."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def anthropic_to_neutral(body: dict[str, Any]) -> Neutral:
    messages: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if message.get("role") == "assistant":
            calls = [ToolCall(b["id"], b["name"], b.get("input") or {})
                     for b in blocks if b.get("type") == "tool_use"]
            messages.append({"role": "assistant", "content": _text_of(
                [b for b in blocks if b.get("type") == "text"]), "tool_calls": calls})
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                messages.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                                 "content": _text_of(block.get("content"))})
        text = _text_of([b for b in blocks if b.get("type") == "text"])
        if text:
            messages.append({"role": "user", "content": text})
    tools = [ToolSpec(t["name"], t.get("description", ""), t.get("input_schema", {}))
             for t in body.get("tools", [])]
    return _text_of(body.get("system", "")), messages, tools


def anthropic_problem(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in a request, so adapter mistakes fail here too."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    pending: set[str] = set()
    for i, message in enumerate(body.get("messages", [])):
        content = message.get("content")
        blocks = [] if isinstance(content, str) else content or []
        if isinstance(content, str) and not content or any(
                b.get("type") == "text" and not b.get("text") for b in blocks):
            return f"messages.{i}: text content blocks must be non-empty"
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if pending - answered:
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(pending - answered))}")
        if any(b.get("type") == "tool_use" and not isinstance(b.get("input"), dict) for b in blocks):
            return f"messages.{i}: tool_use.input: Input should be a valid dictionary"
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    return None


def _anthropic_blocks(body: dict[str, Any]) -> tuple[list[str], int | None]:
    """The prompt in cache order (tools, system, messages) and the end of its cached prefix."""
    system = body.get("system") or []
    items: list[Any] = list(body.get("tools", []))
    items += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for message in body.get("messages", []):
        content = message.get("content")
        items += [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    marks = [i + 1 for i, item in enumerate(items) if isinstance(item, dict) and item.get("cache_control")]
    plain = [{k: v for k, v in item.items() if k != "cache_control"} for item in items]   # markers are not content
    return [json.dumps(item, sort_keys=True) for item in plain], (marks[-1] if marks else None)


def _anthropic_input(arguments: str) -> Any:
    """A tool_use input: the object when the arguments parse, else the raw text as sent."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _anthropic_usage(draft: Draft, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": draft.input_tokens - draft.cache_read - draft.cache_write,
            "cache_creation_input_tokens": draft.cache_write,
            "cache_read_input_tokens": draft.cache_read, "output_tokens": output_tokens}


def anthropic_message(draft: Draft, model: str, message_id: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": draft.text}] if draft.text else []
    content += [{"type": "tool_use", "id": call_id, "name": name, "input": _anthropic_input(arguments)}
                for call_id, name, arguments in draft.calls]
    return {"id": message_id or _id("msg"), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": draft.stop_reason, "stop_sequence": None,
            "usage": _anthropic_usage(draft, draft.output_tokens)}


def anthropic_events(draft: Draft, model: str) -> Iterator[Event]:
    start = anthropic_message(replace(draft, text="", calls=[]), model)
    start.update(stop_reason=None, usage=_anthropic_usage(draft, 1))
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    blocks = ([("text", None, draft.text)] if draft.text else []) + [
        ("tool_use", (call_id, name), arguments) for call_id, name, arguments in draft.calls]
    for index, (kind, call, payload) in enumerate(blocks):
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _chunks(payload)]
        else:
            block = {"type": "tool_use", "id": call[0], "name": call[1], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _chunks(payload)]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": draft.stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": draft.output_tokens}}
    yield "message_stop", {"type": "message_stop"}


ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                    500: "api_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"),
                                       "message": message}, "request_id": _id("req")}


# --- OpenAI Responses API --------------------------------------------------------------------

def responses_to_neutral(body: dict[str, Any]) -> Neutral:
    system = body.get("instructions") or ""
    items = body.get("input") or []
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            if not messages or messages[-1]["role"] != "assistant":
                messages.append({"role": "assistant", "content": "", "tool_calls": []})
            messages[-1]["tool_calls"].append(
                ToolCall(item["call_id"], item["name"], json.loads(item.get("arguments") or "{}")))
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _text_of(item.get("output"))})
        elif item.get("role") in ("system", "developer"):
            system = "\n\n".join(filter(None, [system, _text_of(item.get("content"))]))
        else:
            messages.append({"role": item.get("role", "user"), "content": _text_of(item.get("content")),
                             **({"tool_calls": []} if item.get("role") == "assistant" else {})})
    tools = [ToolSpec(t["name"], t.get("description", ""), t.get("parameters", {}))
             for t in body.get("tools", []) if t.get("type") == "function"]
    return system, messages, tools


def responses_problem(body: dict[str, Any]) -> str | None:
    items = body.get("input") or []
    calls = {i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call"}
    for i, item in enumerate(items if isinstance(items, list) else []):
        if item.get("type") == "function_call_output" and item.get("call_id") not in calls:
            return f"No tool call found for function call output with call_id {item.get('call_id')}."
        if item.get("type") == "function_call":
            try:
                json.loads(item.get("arguments") or "{}")
            except ValueError:
                return f"input[{i}].arguments: invalid JSON"
    return None


def _openai_blocks(body: dict[str, Any], key: str) -> list[str]:
    """The prompt in order; OpenAI caches the longest prefix seen before, automatically."""
    head = [body.get("instructions") or "", json.dumps(body.get("tools", []), sort_keys=True)]
    return head + [json.dumps(item, sort_keys=True) for item in body.get(key) or []]


def _responses_usage(draft: Draft) -> dict[str, Any]:
    return {"input_tokens": draft.input_tokens,
            "input_tokens_details": {"cached_tokens": draft.cache_read, "cache_write_tokens": 0},
            "output_tokens": draft.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": draft.input_tokens + draft.output_tokens}


def _responses_items(draft: Draft, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if draft.text:
        items.append({"id": _id("msg"), "type": "message", "role": "assistant", "status": status,
                      "content": [{"type": "output_text", "text": draft.text, "annotations": []}]})
    items += [{"id": "fc_" + call_id, "type": "function_call", "call_id": call_id, "name": name,
               "arguments": arguments, "status": status} for call_id, name, arguments in draft.calls]
    return items


def responses_object(draft: Draft, model: str, response_id: str | None = None,
                     items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cut = draft.stop_reason == "max_tokens"
    status = "incomplete" if cut else "completed"
    return {"id": response_id or _id("resp"), "object": "response", "created_at": int(time.time()),
            "status": status, "model": model, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "output": _responses_items(draft, status) if items is None else items,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": _responses_usage(draft)}


def _responses_item_events(index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events that build one output item: added, deltas, done."""
    opened = {**item, "status": "in_progress"}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        yield {"type": "response.output_item.added", "output_index": index, "item": {**opened, "content": []}}
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        yield {"type": "response.content_part.added", **where, "part": part}
        for piece in _chunks(text):
            yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
        yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
        yield {"type": "response.content_part.done", **where, "part": {**part, "text": text}}
    else:
        yield {"type": "response.output_item.added", "output_index": index, "item": {**opened, "arguments": ""}}
        where = {"item_id": item["id"], "output_index": index}
        for piece in _chunks(item["arguments"]):
            yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
        yield {"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"],
               "name": item["name"]}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def responses_events(draft: Draft, model: str) -> Iterator[Event]:
    final = responses_object(draft, model)
    opening = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events = [{"type": "response.created", "response": opening},
              {"type": "response.in_progress", "response": opening}]
    for index, item in enumerate(final["output"]):
        events += _responses_item_events(index, item)
    events.append({"type": f"response.{final['status']}", "response": final})
    for number, event in enumerate(events):
        yield event["type"], {**event, "sequence_number": number}


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind, code = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                  429: ("requests", "rate_limit_exceeded"), 529: ("server_error", "overloaded")
                  }.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --- OpenAI Chat Completions -----------------------------------------------------------------

def chat_to_neutral(body: dict[str, Any]) -> Neutral:
    system_parts: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        role, text = message.get("role"), _text_of(message.get("content") or "")
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "tool":
            messages.append({"role": "tool", "tool_call_id": message["tool_call_id"], "content": text})
        elif role == "assistant":
            calls = [ToolCall(c["id"], c["function"]["name"], json.loads(c["function"].get("arguments") or "{}"))
                     for c in message.get("tool_calls") or []]
            messages.append({"role": "assistant", "content": text, "tool_calls": calls})
        else:
            messages.append({"role": "user", "content": text})
    tools = [ToolSpec(t["function"]["name"], t["function"].get("description", ""),
                      t["function"].get("parameters", {})) for t in body.get("tools", [])]
    return "\n\n".join(system_parts), messages, tools


def chat_problem(body: dict[str, Any]) -> str | None:
    pending: set[str] = set()
    for i, message in enumerate(body.get("messages", [])):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in pending:
                return (f"messages.[{i}].role: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.")
            pending.discard(message["tool_call_id"])
            continue
        for call in message.get("tool_calls") or []:
            try:
                json.loads(call["function"].get("arguments") or "{}")
            except ValueError:
                return f"messages.[{i}].tool_calls: arguments are not valid JSON"
        if pending:
            return f"An assistant message with 'tool_calls' must be followed by tool messages: {sorted(pending)}"
        pending = {c["id"] for c in message.get("tool_calls") or []}
    return None


def _chat_usage(draft: Draft) -> dict[str, Any]:
    return {"prompt_tokens": draft.input_tokens, "completion_tokens": draft.output_tokens,
            "total_tokens": draft.input_tokens + draft.output_tokens,
            "prompt_tokens_details": {"cached_tokens": draft.cache_read}}


def _chat_finish(draft: Draft) -> str:
    return {"max_tokens": "length", "tool_use": "tool_calls"}.get(draft.stop_reason, "stop")


def chat_completion(draft: Draft, model: str) -> dict[str, Any]:
    calls = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
             for call_id, name, arguments in draft.calls]
    message = {"role": "assistant", "content": draft.text or None, **({"tool_calls": calls} if calls else {})}
    return {"id": _id("chatcmpl"), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _chat_finish(draft)}],
            "usage": _chat_usage(draft)}


def chat_chunks(draft: Draft, model: str, include_usage: bool) -> Iterator[Event]:
    head = {"id": _id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        return None, {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _chunks(draft.text):
        yield chunk({"content": piece})
    for index, (call_id, name, arguments) in enumerate(draft.calls):
        yield chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in _chunks(arguments):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _chat_finish(draft))
    if include_usage:
        yield None, {**head, "choices": [], "usage": _chat_usage(draft)}


# --- the server ------------------------------------------------------------------------------

@dataclass
class Dialect:
    """What differs between the three endpoints, so that one handler serves them all."""

    to_neutral: Callable[[dict[str, Any]], Neutral]
    problem: Callable[[dict[str, Any]], str | None]
    body: Callable[[Draft, str], dict[str, Any]]
    events: Callable[[Draft, str, dict[str, Any]], Iterator[Event]]
    error: Callable[[int, str], dict[str, Any]]
    max_tokens_keys: tuple[str, ...]
    key_header: str
    done_marker: bool = False


def _chat_events(draft: Draft, model: str, body: dict[str, Any]) -> Iterator[Event]:
    return chat_chunks(draft, model, bool((body.get("stream_options") or {}).get("include_usage")))


DIALECTS = {
    "anthropic": Dialect(anthropic_to_neutral, anthropic_problem, anthropic_message,
                         lambda draft, model, body: anthropic_events(draft, model),
                         anthropic_error, ("max_tokens",), "x-api-key"),
    "responses": Dialect(responses_to_neutral, responses_problem, responses_object,
                         lambda draft, model, body: responses_events(draft, model),
                         openai_error, ("max_output_tokens",), "authorization"),
    "chat": Dialect(chat_to_neutral, chat_problem, chat_completion, _chat_events, openai_error,
                    ("max_completion_tokens", "max_tokens"), "authorization", done_marker=True),
}


def _sse(events: Iterable[Event], done_marker: bool) -> Iterator[str]:
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {json.dumps(data)}\n\n"
    if done_marker:
        yield "data: [DONE]\n\n"


def _key_of(request: Request, dialect: Dialect) -> str:
    value = request.headers.get(dialect.key_header) or request.headers.get("authorization") or ""
    return value.removeprefix("Bearer ").strip()


class WireServer(LoopbackServer):
    """The loopback server; uvicorn runs it on 127.0.0.1 in a background thread."""

    name = "wire server"

    def __init__(self, model: ModelClient | None = None, *, port: int = 0,
                 retry_after: float | None = 1.0, stall_seconds: float = 30.0) -> None:
        self.model = model or ScriptedModel(delay=0)
        self.retry_after = retry_after       # seconds a 429/500/529 asks to wait; None sends none
        self.stall_seconds = stall_seconds   # how long a stalled answer sleeps (client gone ends it)
        self.faults: collections.deque[str] = collections.deque()   # one-shot faults, in order
        self.requests: list[dict[str, Any]] = []   # path, body, fault, retry count; never a key
        self.cache = PromptCache()
        super().__init__(Starlette(routes=[
            Route("/v1/messages", self._endpoint("anthropic"), methods=["POST"]),
            Route("/v1/responses", self._endpoint("responses"), methods=["POST"]),
            Route("/v1/chat/completions", self._endpoint("chat"), methods=["POST"]),
        ]), port=port)

    # life cycle

    @property
    def openai_base_url(self) -> str:
        """For the OpenAI SDK (it adds /responses and /chat/completions); base_url is for Anthropic's."""
        return self.base_url + "/v1"

    # requests

    def _endpoint(self, name: str):
        dialect = DIALECTS[name]

        async def endpoint(request: Request) -> Response:
            return await self._answer(request, name, dialect)
        return endpoint

    def _take_fault(self, request: Request) -> str | None:
        return request.headers.get(FAULT_HEADER) or (self.faults.popleft() if self.faults else None)

    async def _answer(self, request: Request, name: str, dialect: Dialect) -> Response:
        fault = self._take_fault(request)
        try:
            body = await request.json()
        except ValueError:
            return self._error(dialect, 400, "the body is not valid JSON")
        self.requests.append({"path": request.url.path, "body": body, "fault": fault,
                              "retry": request.headers.get("x-stainless-retry-count")})
        key = _key_of(request, dialect)
        early = await self._early_fault(request, dialect, fault, key, bool(body.get("stream")))
        if early is not None:
            return early
        problem = dialect.problem(body)
        if problem:
            return self._error(dialect, 400, problem)
        draft = await self._draft(name, dialect, body, fault)
        model = str(body.get("model", "unknown"))
        if not body.get("stream"):
            return JSONResponse(dialect.body(draft, model))
        chunks = _sse(dialect.events(draft, model, body), dialect.done_marker)
        if fault == "stall-stream":
            chunks = self._stalled_after_first(chunks)
        return StreamingResponse(chunks, media_type="text/event-stream")

    async def _early_fault(self, request: Request, dialect: Dialect, fault: str | None,
                           key: str, stream: bool) -> Response | None:
        """Faults answered before the model runs: refusals, errors and stalls."""
        if fault is not None and fault not in FAULTS:
            return self._error(dialect, 400, f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if not key:
            return self._error(dialect, 401, "no API key was sent")
        if fault == "401":
            return self._error(dialect, 401, f"Incorrect API key provided: {key}.")
        if fault in ("429", "500", "529"):
            text = {"429": "Rate limit exceeded.", "500": "Internal server error.", "529": "Overloaded"}[fault]
            return self._error(dialect, int(fault), text, retryable=True)
        if fault == "stall" or (fault == "stall-stream" and not stream):
            await self._stall(request)
        return None

    async def _draft(self, name: str, dialect: Dialect, body: dict[str, Any], fault: str | None) -> Draft:
        system, messages, tools = dialect.to_neutral(body)
        draft = draft_from_reply(await self.model.complete(system, messages, tools))
        total, read, write = self._cache_account(name, body)
        draft = replace(draft, input_tokens=total, cache_read=read, cache_write=write)
        limit = next((body[k] for k in dialect.max_tokens_keys if body.get(k)), DEFAULT_MAX_TOKENS)
        if fault == "malformed":
            draft = break_arguments(draft)
        if fault == "max_tokens":
            return forced_cut(draft, limit)
        return cut_off(draft, limit) if draft.output_tokens > limit else draft

    def _cache_account(self, name: str, body: dict[str, Any]) -> tuple[int, int, int]:
        key = f"{name}:{body.get('model')}:"
        if name == "anthropic":
            blocks, mark = _anthropic_blocks(body)
            return self.cache.account(key, blocks, mark)
        blocks = _openai_blocks(body, "input" if name == "responses" else "messages")
        return self.cache.account(key, blocks, len(blocks))

    def _error(self, dialect: Dialect, status: int, message: str, retryable: bool = False) -> Response:
        headers = {}
        if retryable and self.retry_after is not None:
            headers = {"retry-after": f"{self.retry_after:g}", "retry-after-ms": f"{self.retry_after * 1000:g}"}
        return JSONResponse(dialect.error(status, message), status_code=status, headers=headers)

    async def _stall(self, request: Request) -> None:
        """Answer nothing until the client gives up, the stall ends or the server stops."""
        deadline = time.monotonic() + self.stall_seconds
        while time.monotonic() < deadline and not (self._server and self._server.should_exit):
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    async def _stalled_after_first(self, chunks: Iterator[str]) -> AsyncIterator[str]:
        yield next(chunks)
        deadline = time.monotonic() + self.stall_seconds
        while time.monotonic() < deadline and not (self._server and self._server.should_exit):
            await asyncio.sleep(0.02)
        for chunk in chunks:
            yield chunk


def main(argv: list[str] | None = None) -> None:
    """`python -m osqr_nb.wire [--port N]`: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m osqr_nb.wire", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    server = WireServer(port=args.port).start()
    print(server.base_url, flush=True)
    print(f"  Anthropic SDK: base_url={server.base_url}\n  OpenAI SDK:    base_url={server.openai_base_url}\n"
          f"  faults: header {FAULT_HEADER}: one of {', '.join(FAULTS)}", flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

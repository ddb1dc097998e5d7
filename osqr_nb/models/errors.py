"""What the provider adapters share: our own errors, key scrubbing, usage with cache tokens.

The SDKs raise a zoo of exception types whose messages quote response bodies
(a provider may echo the key it was sent) and whose `request` carries the key
in its headers. The adapters turn every one of them into the few errors below,
whose messages pass through `scrub` and which never chain the SDK exception,
so a traceback in a notebook cannot show a key either.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .base import Reply, ToolCall, Usage

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class ProviderError(RuntimeError):
    """A model call that failed; the message says what happened and what to do."""

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status_code = status_code


class ProviderDown(ProviderError):
    """The provider kept failing (429, 5xx, 529, no connection) after the SDK's retries."""


class ProviderTimeout(ProviderDown):
    """No answer within the timeout, after the SDK's retries (or a stream went silent)."""


class AuthError(ProviderError):
    """The key is missing, refused (401) or not allowed this model (403)."""


class BadToolCall(ProviderError):
    """The model called a tool with arguments that are not a JSON object.

    `reply` holds the rest of the reply (text, well-formed calls) so a caller can
    tell the model what went wrong and ask again.
    """

    def __init__(self, message: str, *, tool_name: str, call_id: str, raw_arguments: str,
                 reply: Reply | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.tool_name = tool_name
        self.call_id = call_id
        self.raw_arguments = raw_arguments
        self.reply = reply


class Truncated(ProviderError):
    """The reply was cut off at max_tokens inside a tool call, which cannot be run half-written.

    `reply` holds what arrived (its usage is real and costs money).
    """

    def __init__(self, message: str, *, reply: Reply, max_tokens: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reply = reply
        self.max_tokens = max_tokens


@dataclass
class ProviderUsage(Usage):
    """Usage with prompt-cache tokens, until `base.Usage` has these fields.

    `input_tokens` counts every input token, cached ones included (the
    convention of genai-prices); the cache counts are parts of it.
    """

    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> "ProviderUsage":
        return ProviderUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                             self.cache_read_tokens + getattr(other, "cache_read_tokens", 0),
                             self.cache_write_tokens + getattr(other, "cache_write_tokens", 0))

    def __radd__(self, other: Usage) -> "ProviderUsage":
        """`Usage() + ProviderUsage(...)` (how the agent sums) keeps the cache counts."""
        return self + other


def scrub(text: str, secrets: list[str | None]) -> str:
    """The text with every secret, and any bearer token, replaced by a marker."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted key]")
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1[redacted]", text)


def resolve_key(provider: str, api_key: str | None) -> str:
    """The key to use, or an AuthError that says which variable to set and how to run offline."""
    key = api_key or os.environ.get(KEY_VARIABLES[provider])
    if not key:
        raise AuthError(f"no {provider} API key: set {KEY_VARIABLES[provider]} (or pass api_key=...), "
                        "or run offline with the scripted model", provider=provider)
    return key


def status_error(provider: str, model: str, status: int, detail: str, secrets: list[str | None]) -> ProviderError:
    """Our error for an HTTP status the SDK gave up on."""
    detail = scrub(detail, secrets)
    where = f"{provider} model {model!r}"
    if status in (401, 403):
        action = "is refused (401): check the key" if status == 401 else "is not allowed (403) for this key"
        return AuthError(f"{where}: the API key {action} ({detail})", provider=provider, model=model,
                         status_code=status)
    if status == 429 or status >= 500:
        what = {429: "rate limited", 529: "overloaded"}.get(status, f"failing (HTTP {status})")
        return ProviderDown(f"{where}: the provider is {what} and stayed so through the retries; "
                            f"try again later or switch model ({detail})", provider=provider, model=model,
                            status_code=status)
    return ProviderError(f"{where}: the request was rejected (HTTP {status}): {detail}",
                         provider=provider, model=model, status_code=status)


def timeout_error(provider: str, model: str, timeout: float) -> ProviderTimeout:
    return ProviderTimeout(f"{provider} model {model!r}: no answer within {timeout:g} s, after the retries; "
                           "try again later, raise the timeout or switch model", provider=provider, model=model)


def connection_error(provider: str, model: str) -> ProviderDown:
    return ProviderDown(f"{provider} model {model!r}: cannot reach the provider (connection failed after "
                        "the retries); check the network or base URL", provider=provider, model=model)


def bad_tool_call(provider: str, model: str, call: tuple[str, str, str], reply: Reply | None,
                  secrets: list[str | None]) -> BadToolCall:
    call_id, name, raw = call
    raw = scrub(raw, secrets)
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return BadToolCall(f"{provider} model {model!r} called {name} with arguments that are not a JSON "
                       f"object: {shown}", tool_name=name, call_id=call_id, raw_arguments=raw, reply=reply,
                       provider=provider, model=model)


def truncated(provider: str, model: str, reply: Reply, max_tokens: int) -> Truncated:
    names = ", ".join(c.name for c in reply.tool_calls) or "a tool"
    return Truncated(f"{provider} model {model!r}: the reply was cut off at max_tokens={max_tokens} in the "
                     f"middle of a call to {names}; raise max_tokens or ask for smaller steps",
                     reply=reply, max_tokens=max_tokens, provider=provider, model=model)


def call_fields(call: ToolCall | dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(id, name, arguments) of a tool call kept as a ToolCall or, after a reload, a dict."""
    if isinstance(call, dict):
        return call["id"], call["name"], call.get("arguments") or {}
    return call.id, call.name, call.arguments

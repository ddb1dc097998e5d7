"""The one place where the seed's model names meet current model ids.

Model ids change (the anthropic SDK warns that claude-sonnet-4-5 reaches end of
life on 2026-11-30), so routes name models by family ("claude-sonnet") and
this table says which id that means today, which provider serves it, and
through which API (OpenAI's Codex family is served only by the Responses API).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    name: str          # the name routes use
    model_id: str      # what the provider's API is called with
    provider: str      # anthropic | openai | compatible | scripted
    api: str           # messages | responses | chat | scripted
    label: str         # how widgets show it

    @property
    def display(self) -> str:
        """Scripted models always say so; real ones show their model id."""
        return self.label if self.provider == "scripted" else self.model_id


CATALOG: dict[str, ModelInfo] = {m.name: m for m in [
    ModelInfo("claude-opus", "claude-opus-5-5", "anthropic", "messages", "Claude Opus"),
    ModelInfo("claude-sonnet", "claude-sonnet-5-5", "anthropic", "messages", "Claude Sonnet"),
    ModelInfo("claude-haiku", "claude-haiku-5-5", "anthropic", "messages", "Claude Haiku"),
    ModelInfo("codex", "gpt-5.3-codex", "openai", "responses", "GPT Codex"),
    ModelInfo("gpt-4o", "gpt-4o", "openai", "responses", "GPT-4o"),
    ModelInfo("gpt-4o-mini", "gpt-4o-mini", "openai", "responses", "GPT-4o mini"),
    ModelInfo("scripted", "scripted", "scripted", "scripted", "scripted (offline demo)"),
]}


def lookup(name: str, compatible_models: list[str] | None = None) -> ModelInfo:
    """A catalog entry by route name or model id; models of an OpenAI-compatible server by their id."""
    if name in CATALOG:
        return CATALOG[name]
    for info in CATALOG.values():
        if info.model_id == name:
            return info
    if compatible_models and name in compatible_models:
        return ModelInfo(name, name, "compatible", "chat", name)
    if name.startswith("claude-"):
        return ModelInfo(name, name, "anthropic", "messages", name)
    if name.startswith(("gpt-", "o1", "o3", "o4", "codex")):
        return ModelInfo(name, name, "openai", "responses", name)
    known = ", ".join(sorted(CATALOG) + sorted(compatible_models or []))
    raise ValueError(f"unknown model {name!r}; known models: {known} (or any claude-*/gpt-* id, "
                     "or a model of the OpenAI-compatible server in OSQR.providers['compatible']['models'])")


def describe_client(client: object) -> ModelInfo:
    """A catalog-style entry for a client handed over directly (not routed)."""
    from .scripted import ScriptedModel
    if isinstance(client, ScriptedModel):
        return CATALOG["scripted"]
    name = getattr(client, "name", type(client).__name__)
    return ModelInfo(name, getattr(client, "model_id", name), getattr(client, "provider", "unknown"),
                     "custom", name)

"""Which model each task kind goes to, and the clients that reach them.

The default table is the seed's. Each route is an ordered list; the first model
whose provider is configured (a key, or a base URL for an OpenAI-compatible
server) is used, later ones are fallbacks, and with no provider at all the
scripted offline model runs, saying so. A learned cascade (`escalations`) names,
per kind, the model a task goes on to when its attempt on the route's first
model fails in the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from .models.base import ModelClient
from .models.catalog import CATALOG, ModelInfo, lookup
from .models.errors import KEY_VARIABLES
from .plan.task import TaskKind

DEFAULT_ROUTES: dict[str, list[str]] = {
    "code": ["codex", "claude-sonnet"],
    "architecture": ["claude-opus"],
    "docs": ["claude-sonnet", "gpt-4o"],
    "quick_fix": ["gpt-4o-mini"],
    "review": ["claude-opus"],
    "refactor": ["claude-sonnet"],
    "tests": ["codex"],
}
# When none of a route's models can be reached: any configured provider's all-rounder.
FALLBACKS = ["claude-sonnet", "gpt-4o"]


@dataclass(frozen=True)
class Route:
    kind: str
    model: ModelInfo
    reason: str               # table | learned | fallback | forced | offline
    candidates: tuple[str, ...]
    escalate_to: str | None = None   # where a failed attempt goes on (a learned cascade's last model)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.name, "model_id": self.model.model_id, "provider": self.model.provider,
                "reason": self.reason, "candidates": list(self.candidates), "escalate_to": self.escalate_to}


class Router:
    def __init__(self, routes: Mapping[str, list[str]] | None = None,
                 providers: Mapping[str, Mapping[str, Any]] | None = None, forced: str | None = None,
                 scripted_delay: float = 0.0, env: Mapping[str, str] | None = None,
                 offline: str = "direct") -> None:
        if offline not in ("direct", "wire"):
            raise ValueError(f"OSQR.offline must be 'direct' or 'wire', got {offline!r}")
        self.offline = offline
        self.providers = {k: dict(v) for k, v in (providers or {}).items()}
        self.env = os.environ if env is None else env
        self.routes = {**DEFAULT_ROUTES, **self._checked(routes or {})}
        self.forced = self.info(forced) if forced else None
        self.scripted_delay = scripted_delay
        self.learned: set[str] = set()       # kinds whose order past outcomes changed
        self.escalations: dict[str, str] = {}   # kind -> the model a failed first attempt goes on to
        self._clients: dict[str, ModelClient] = {}

    def _checked(self, routes: Mapping[str, list[str]]) -> dict[str, list[str]]:
        known = {k.value for k in TaskKind}
        for kind, models in routes.items():
            if kind not in known:
                raise ValueError(f"OSQR.routes: unknown task kind {kind!r}; kinds: {', '.join(sorted(known))}")
            if isinstance(models, str):
                models = [models]
            for name in models:
                self.info(name)                      # an unknown name is a clear error now, not later
        return {k: [v] if isinstance(v, str) else list(v) for k, v in routes.items()}

    def info(self, name: str) -> ModelInfo:
        return lookup(name, self.providers.get("compatible", {}).get("models"))

    def key_state(self, provider: str) -> str:
        """present | missing | not needed (never the key itself)."""
        if provider in ("scripted",):
            return "not needed"
        if provider == "compatible":
            return "present" if self.providers.get("compatible", {}).get("api_key") else "not needed"
        configured = self.providers.get(provider, {}).get("api_key") or self.env.get(KEY_VARIABLES[provider])
        return "present" if configured else "missing"

    def available(self, info: ModelInfo) -> bool:
        if info.provider == "scripted":
            return True
        if info.provider == "compatible":
            return bool(self.providers.get("compatible", {}).get("base_url"))
        return self.key_state(info.provider) == "present"

    def route(self, kind: str) -> Route:
        candidates = tuple(self.routes.get(kind, FALLBACKS))
        if self.forced is not None:
            return Route(kind, self.forced, "forced", candidates)
        for position, name in enumerate(candidates):
            info = self.info(name)
            if self.available(info):
                if position:
                    return Route(kind, info, "fallback", candidates)
                return Route(kind, info, "learned" if kind in self.learned else "table", candidates,
                             self._escalation(kind, info))
        for name in FALLBACKS + self.providers.get("compatible", {}).get("models", []):
            info = self.info(name)
            if self.available(info):
                return Route(kind, info, "fallback", candidates)
        return Route(kind, CATALOG["scripted"], "offline", candidates)

    def _escalation(self, kind: str, first: ModelInfo) -> str | None:
        """The cascade's last model for the kind, if it is another model and reachable."""
        target = self.escalations.get(kind)
        if target is None or target == first.name or not self.available(self.info(target)):
            return None
        return target

    def reachable(self) -> list[str]:
        """Every model this router can reach now (catalog and compatible server), for learned routes:
        each of them may compete for every kind."""
        names = list(CATALOG) + self.providers.get("compatible", {}).get("models", [])
        return [name for name in dict.fromkeys(names) if self.available(self.info(name))]

    def alternatives(self, kind: str, current: str) -> list[ModelInfo]:
        """Other reachable models for this kind, best first (for [Switch model])."""
        names = list(self.routes.get(kind, [])) + FALLBACKS + self.providers.get("compatible", {}).get("models", [])
        seen, result = {current}, []
        for name in names:
            info = self.info(name)
            if info.name not in seen and self.available(info):
                seen.add(info.name)
                result.append(info)
        return result

    def client(self, info: ModelInfo, on_delta: Callable[[str, str], None] | None = None) -> ModelClient:
        """One client per model per router (connection pools are reused across tasks); a task that
        wants to see tokens arrive (`on_delta`) gets a streaming client of its own."""
        if on_delta is not None and info.provider != "scripted":
            return self._make(info, {"stream": True, "on_delta": on_delta})
        if info.name not in self._clients:
            self._clients[info.name] = self._make(info)
        return self._clients[info.name]

    def _make(self, info: ModelInfo, extra: dict[str, Any] | None = None) -> ModelClient:
        settings = self.providers.get(info.provider, {})
        options = {k: settings[k] for k in ("api_key", "base_url", "timeout", "max_retries", "max_tokens")
                   if settings.get(k) is not None}
        options.update(extra or {})
        if info.provider == "scripted":
            from .models.scripted import ScriptedModel
            if self.offline == "wire":
                return offline_wire_client(self.scripted_delay)
            return ScriptedModel(delay=self.scripted_delay)
        if info.api == "messages":
            from .models.anthropic import AnthropicModel
            return AnthropicModel(info.model_id, **options)
        from .models.openai import OpenAIChatModel, OpenAIResponsesModel
        if info.api == "chat":
            return OpenAIChatModel(info.model_id, provider="compatible", **options)
        return OpenAIResponsesModel(info.model_id, **options)

    def table(self) -> pd.DataFrame:
        """The routing table as it stands now: for `%osqr route`."""
        rows = []
        for kind in (k.value for k in TaskKind):
            route = self.route(kind)
            rows.append({"kind": kind, "route": " → ".join(route.candidates), "uses now": route.model.name,
                         "escalates to": route.escalate_to or "", "model id": route.model.model_id,
                         "why": route.reason,
                         "provider": route.model.provider, "key": self.key_state(route.model.provider)})
        return pd.DataFrame(rows)


def models_table(router: Router) -> pd.DataFrame:
    """Every model the router knows: id, provider, API, price per million tokens, reachable now."""
    from .models.pricing import per_million
    rows = []
    names = list(CATALOG) + router.providers.get("compatible", {}).get("models", [])
    for name in names:
        info = router.info(name)
        price_in, price_out = per_million(info.model_id, info.provider) if info.provider != "compatible" \
            else (None, None)
        rows.append({"model": info.name, "model id": info.model_id, "provider": info.provider,
                     "api": info.api, "usd per 1M input": price_in, "usd per 1M output": price_out,
                     "available": router.available(info), "key": router.key_state(info.provider)})
    return pd.DataFrame(rows)


_wire_servers: dict[float, Any] = {}


def offline_wire_client(delay: float) -> ModelClient:
    """The scripted model behind the real anthropic SDK, over a loopback wire server that
    lives as long as the process: the offline demo then runs every SDK code path."""
    from .models.anthropic import AnthropicModel
    from .models.scripted import SCRIPTED_NAME, ScriptedModel
    from .wire import WireServer

    if delay not in _wire_servers:
        _wire_servers[delay] = WireServer(ScriptedModel(delay=delay)).start()
    client = AnthropicModel("scripted", api_key="offline-demo-no-key", base_url=_wire_servers[delay].base_url)
    client.name = SCRIPTED_NAME
    return client

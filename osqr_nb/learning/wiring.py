"""Where learning meets a run: thresholds and routes at its start, evidence at its end.

Everything here is best effort: a personal store that is empty, thin or
unreadable leaves the static thresholds and the table's routes in place. Runs
on demo models (the scripted offline model) teach nothing: their decisions and
outcomes never reach the personal store, so they cannot move a real route or
threshold.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .pkv import PKV, priors_from
from .routes import cascade_routes
from .thresholds import apply_thresholds, explanations, recommend_thresholds

log = logging.getLogger(__name__)
PRIORS_FILE = "gpkv_priors.json"          # the last /v1/priors answer, cached next to the PKV
PRIORS_MAX_AGE = 24 * 3600                # seconds before a cached answer is refreshed (in the background)
DEMO_PROVIDERS = ("scripted",)


def is_demo(model: Any) -> bool:
    """A model that only plays a part (the scripted offline demo): it says nothing about real work."""
    if not isinstance(model, str) or not model:
        return False
    from ..models.catalog import CATALOG
    info = CATALOG.get(model)
    return (info is not None and info.provider in DEMO_PROVIDERS) or model.lower().startswith("scripted")


def priors_path(pkv: PKV) -> Path:
    return Path(pkv.path).with_name(PRIORS_FILE)


def cached_priors(pkv: PKV) -> Any:
    path = priors_path(pkv)
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def save_priors(pkv: PKV, priors: Any) -> None:
    path = priors_path(pkv)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(priors))


_fetching: dict[str, threading.Thread] = {}


def _fetch(pkv: PKV) -> None:
    from ..sharing import fetch_priors_blocking
    try:
        save_priors(pkv, fetch_priors_blocking())
    except Exception as exc:                 # a service that does not answer leaves the cache as it was
        log.info("could not fetch the global priors: %s", exc)


def refresh_priors(pkv: PKV, wait: float = 0.0) -> None:
    """Fetch the service's priors in a background thread when they are missing or old; wait at most `wait` s."""
    from ..sharing import configured
    path = priors_path(pkv)
    if not configured() or (path.exists() and time.time() - path.stat().st_mtime < PRIORS_MAX_AGE):
        return
    key = str(path)
    if key not in _fetching or not _fetching[key].is_alive():
        _fetching[key] = threading.Thread(target=_fetch, args=(pkv,), name="osqr-gpkv-priors", daemon=True)
        _fetching[key].start()
    if wait:
        _fetching[key].join(wait)


def wait_for_priors(pkv: PKV, timeout: float) -> bool:
    """Wait for a background fetch of the priors (never on the kernel's loop); True once cached."""
    fetching = _fetching.get(str(priors_path(pkv)))
    if fetching is not None:
        fetching.join(timeout)
    return priors_path(pkv).exists()


def learn_into(policy: Any, target_wrong_rate: float = 0.05, pkv: PKV | None = None) -> bool:
    """Lay learned per-category thresholds (and why) onto the policy; False when there is no evidence.

    With a GPKV service configured, the global priors are fetched in the background as
    soon as it is (`%load_ext`, or setting OSQR.gpkv_url), so a new user's first run
    already follows them; nothing here waits for the network on the kernel's loop.
    """
    try:
        pkv = pkv or PKV()
        refresh_priors(pkv)
        history = pkv.history()
        priors = cached_priors(pkv)
        prior = priors_from(priors) if priors else None
        if history.empty and (prior is None or prior.empty):
            return False
        frame = recommend_thresholds(history, target_wrong_rate, prior=prior)
        learned = apply_thresholds(frame[frame["source"] != "uniform"])
        policy.by_category.update(learned)
        policy.reasons.update({c: r for c, r in explanations(frame, history).items() if c in learned})
        return bool(learned)
    except (ValueError, OSError, KeyError) as exc:
        log.info("no learned thresholds: %s", exc)
        return False


def learned_routes(table: dict[str, list[str]], pkv: PKV | None = None, reachable: Iterable[str] | None = None
                   ) -> tuple[dict[str, list[str]], set[str], dict[str, str]]:
    """The routes runs take, learned from past outcomes with every reachable model competing
    (see cascade_routes): per kind the cascade, then the table's models and the other reachable
    ones as fallbacks; the kinds whose first model changed; and {kind: the model a failed first
    attempt is escalated to}."""
    try:
        pkv = pkv or PKV()
        candidates = [m for m in reachable or [] if not is_demo(m)]
        chains = cascade_routes(pkv.outcomes(), table, prior=cached_priors(pkv), candidates=candidates,
                                price_hint=price_hint(candidates + [m for ms in table.values() for m in ms]))
    except (ValueError, OSError, KeyError) as exc:
        log.info("no learned routes: %s", exc)
        return table, set(), {}
    routes = {kind: list(dict.fromkeys([*chains.get(kind, []), *models, *candidates]))
              for kind, models in table.items()}
    learned = {k for k in table if routes[k][:1] != list(table[k])[:1]}
    return routes, learned, {k: chain[-1] for k, chain in chains.items() if len(chain) > 1}


def price_hint(models: Iterable[str]) -> dict[str, float]:
    """Relative price of a typical task per model (dollars per million tokens, input weighing
    eight times output, as agent turns read far more than they write); unknown prices are left out."""
    from ..models.catalog import lookup
    from ..models.pricing import per_million
    hints = {}
    for name in dict.fromkeys(models):
        try:
            info = lookup(name)
            price_in, price_out = per_million(info.model_id, info.provider)
        except (ValueError, LookupError):
            continue
        if price_in is not None and price_out is not None:
            hints[name] = 8 * price_in + price_out
    return hints


def real_only(history: pd.DataFrame, outcomes: list[dict[str, Any]], models_by_task: dict[str, str]
              ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """What a run may teach: nothing from demo models; a decision of no task counts only when the
    run used some real model."""
    outcomes = [o for o in outcomes if not is_demo(o.get("model")) and not is_demo(o.get("escalated_from"))]
    if history.empty:
        return history, outcomes
    models = history["model"] if "model" in history.columns else history["task_id"].map(models_by_task)
    real_run = any(not is_demo(m) for m in models_by_task.values())
    keep = models.map(lambda m: not is_demo(m) if isinstance(m, str) else real_run)
    return history[keep.astype(bool).to_numpy()], outcomes


def record_run(history: pd.DataFrame, outcomes: list[dict[str, Any]], models_by_task: dict[str, str],
               pkv: PKV | None = None) -> None:
    """A finished run's decisions and per-task outcomes into the personal store (counts, no text);
    demo models' are left out."""
    history, outcomes = real_only(history, outcomes, models_by_task)
    if history.empty and not outcomes:
        return
    pkv = pkv or PKV()
    if not history.empty:
        pkv.record_history(history, models_by_task=models_by_task)
    if outcomes:
        pkv.record_outcomes(outcomes)

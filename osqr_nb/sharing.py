"""Opt-in sharing of aggregates with a GPKV service (`%osqr share`).

Only counts leave the machine: accepted and overridden decisions per category,
task kind, model and confidence bin (no code, text, file names or ids), built by
`osqr_nb.gpkv.client.payload_from_history`. `%osqr share --preview` shows the
exact payload; nothing is sent until the person runs `%osqr share`.
"""

from __future__ import annotations

import os
import time

import pandas as pd

from .config import settings
from .gpkv.client import AsyncGPKVClient, payload_from_history
from .store.events import Event, EventLog

SHARE_RUN = "share"          # the event log's run id for sharing records


def _last_shared(log: EventLog) -> float:
    times = [e.data.get("until", 0.0) for e in log.read(SHARE_RUN) if e.type == "shared"]
    return max(times, default=0.0)


def _demo_runs(log: EventLog) -> set[str]:
    """Runs whose tasks all went to demo models (the scripted offline model): their answers teach nothing."""
    from .learning.wiring import is_demo
    models: dict[str, list[str]] = {}
    for event in log.read():
        if event.type == "task_routed":
            models.setdefault(event.run_id, []).append(event.data.get("model", ""))
    return {run for run, names in models.items() if all(is_demo(m) for m in names)}


def new_decisions(history: pd.DataFrame, log: EventLog) -> pd.DataFrame:
    """Decisions a person made since the last share in runs on real models (each is shared once;
    auto ones and demo runs teach nothing)."""
    if history.empty:
        return history
    since = pd.Timestamp(_last_shared(log), unit="s", tz="UTC")
    return history[(history.resolved_at > since) & history.decided_by.isin(["human", "code"])
                   & ~history.run_id.isin(_demo_runs(log))]


def payload_for(history: pd.DataFrame, log: EventLog):
    return payload_from_history(new_decisions(history, log))


def configured() -> bool:
    """Whether a GPKV service and its token are set (nothing is ever fetched or sent otherwise)."""
    try:
        service()
    except ValueError:
        return False
    return True


def service() -> tuple[str, str]:
    """The configured service URL and token (the token from config or OSQR_GPKV_TOKEN)."""
    config = settings()
    token = config.gpkv_token or os.environ.get("OSQR_GPKV_TOKEN", "")
    if not config.gpkv_url or not token:
        raise ValueError("no GPKV service configured: set %config OSQR.gpkv_url = 'https://...' and the "
                         "token in OSQR_GPKV_TOKEN (or OSQR.gpkv_token); %osqr share --preview works without")
    return config.gpkv_url, token


NOTHING = "nothing new to share: every decision so far was shared already (or none was made by a person)"


def preview(history: pd.DataFrame, log: EventLog) -> str:
    if new_decisions(history, log).empty:
        return NOTHING
    payload = payload_for(history, log)
    return AsyncGPKVClient("http://preview.invalid", "preview-token-not-sent").preview(payload)


async def share(history: pd.DataFrame, log: EventLog) -> dict:
    """Upload the new decisions' counts; record what was shared (counts only) in the log."""
    url, token = service()
    if new_decisions(history, log).empty:
        return {"status": NOTHING}
    payload = payload_for(history, log)
    answer = await AsyncGPKVClient(url, token).upload(payload)
    log.append(Event(SHARE_RUN, "shared", None, {"until": time.time(), "status": answer.get("status"),
                                                 "decision_rows": len(payload.decisions),
                                                 "upload_id": payload.upload_id}))
    return answer


async def pull_priors() -> int:
    """Download the service's k-anonymous priors and keep them beside the personal store: a new
    user's thresholds and routes then start from what everyone taught (personal evidence takes over).
    Needs no runs of one's own: this is how a new user starts. Returns how many decision groups came."""
    from .learning import PKV
    from .learning.wiring import save_priors
    url, token = service()
    async with AsyncGPKVClient(url, token) as client:
        priors = await client.priors()
    save_priors(PKV(), priors)
    return len(priors.get("decisions", []))


def fetch_priors_blocking(timeout: float = 5.0) -> dict:
    """The service's priors, fetched synchronously (for a background thread; never on the kernel's loop)."""
    from .gpkv.client import GPKVClient
    url, token = service()
    with GPKVClient(url, token, timeout=timeout) as client:
        return client.priors()

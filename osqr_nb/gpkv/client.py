"""The osqr-nb side of osqr-gpkv: build a payload from history, preview it, send it.

Sharing is opt-in. `payload_from_history` turns a frame with the columns of
`osqr_nb.history()` into counts; run and task ids and the proposed and chosen
text are read only to count and never leave the machine. Names are kept only
when they are not identifying: task kinds osqr-nb defines, the categories in
`SHARED_CATEGORIES` and public model families and versions (the payload's
vocabulary, which the server enforces too); any other becomes "other". `preview` shows exactly the JSON
`upload` sends, for `%osqr share --preview`.

`GPKVClient` is synchronous (httpx.Client); `AsyncGPKVClient` has the same
methods as coroutines, for the kernel's event loop. Neither ever shows the token.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import httpx

from .payload import (CATEGORIES, MODEL_FAMILIES, TASK_KINDS, DecisionCount, Payload, PayloadError,
                      RouteOutcome, _uuid4, bin_of, check, new_id, shared_model, shared_name, validate)

HISTORY_COLUMNS = frozenset({"task_kind", "category", "confidence", "proposed", "chosen", "decided_by"})
PERSON = ("human", "code")     # decisions a person took: only these tell whether the agent was right
SHARED_CATEGORIES = CATEGORIES
PUBLIC_MODEL_PREFIXES = MODEL_FAMILIES
CONTRIBUTOR_FILE = "gpkv-contributor-id"


class GPKVError(Exception):
    """osqr-gpkv refused a request or could not be reached; the message says which and why."""


class GPKVAuthError(GPKVError):
    """The server refused the token (401)."""


class GPKVRateLimited(GPKVError):
    """Too many requests for this token (429); `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GPKVRejected(GPKVError):
    """The server refused the request as sent (any other 4xx or 5xx); `status` is its status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- the contributor --------------------------------------------------------------------------

def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "osqr-nb"


def contributor_id(path: str | os.PathLike | None = None) -> str:
    """This installation's contributor id: random once, then kept (derived from nothing)."""
    path = Path(path) if path is not None else _config_dir() / CONTRIBUTOR_FILE
    if path.exists():
        return _uuid4(path.read_text(encoding="utf-8").strip(), f"the contributor id in {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = new_id()
    path.write_text(identity + "\n", encoding="utf-8")
    return identity


# --- from history to a payload ----------------------------------------------------------------

def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return bool(value)
    except (TypeError, ValueError):     # pandas.NA
        return None


def _records(frame: Any, columns: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a DataFrame (or a list of dicts) with only the columns that may be counted."""
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else list(frame)
    return [{c: row.get(c) for c in columns} for row in rows]


def decision_counts(history: Any, categories: Iterable[str] | None = SHARED_CATEGORIES,
                    model_prefixes: Iterable[str] | None = PUBLIC_MODEL_PREFIXES) -> list[DecisionCount]:
    """Accepted (chosen == proposed) and overridden decisions a person took, per group."""
    allowed = frozenset(categories) if categories is not None else None
    counts: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    columns = ("task_kind", "category", "confidence", "proposed", "chosen", "decided_by", "model")
    for row in _records(history, columns):
        proposed, chosen, confidence = _text(row["proposed"]), _text(row["chosen"]), _number(row["confidence"])
        if row["decided_by"] not in PERSON or proposed is None or chosen is None or confidence is None \
                or not 0 <= confidence <= 1:
            continue
        group = (shared_name(row["category"], allowed), shared_name(row["task_kind"], TASK_KINDS),
                 shared_model(row["model"], model_prefixes), bin_of(confidence))
        counts[group][0 if chosen == proposed else 1] += 1
    return [DecisionCount(*group, accepted, overridden) for group, (accepted, overridden) in sorted(counts.items())]


def route_outcomes(outcomes: Any, model_prefixes: Iterable[str] | None = PUBLIC_MODEL_PREFIXES
                   ) -> list[RouteOutcome]:
    """Per (task_kind, model): one row per routed task with success (True, False or unknown),
    cost_usd and seconds; unknown costs and times add nothing to the sums."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for row in _records(outcomes, ("task_kind", "model", "success", "cost_usd", "seconds")):
        key = (shared_name(row["task_kind"], TASK_KINDS), shared_model(row["model"], model_prefixes))
        success, total = _flag(row["success"]), sums[key]
        total[0] += success is True
        total[1] += success is False
        total[2] += 1
        total[3] += max(0.0, _number(row["cost_usd"]) or 0.0)
        total[4] += max(0.0, _number(row["seconds"]) or 0.0)
    return [RouteOutcome(kind, model, int(s), int(f), int(n), cost, seconds)
            for (kind, model), (s, f, n, cost, seconds) in sorted(sums.items())]


def payload_from_history(history: Any, route_outcomes_df: Any = None, *, contributor: str | None = None,
                         upload_id: str | None = None,
                         categories: Iterable[str] | None = SHARED_CATEGORIES,
                         model_prefixes: Iterable[str] | None = PUBLIC_MODEL_PREFIXES) -> Payload:
    """The payload for a history frame (columns of `osqr_nb.history()`, `model` optional).

    Only counts leave: run_id, task_id, proposed and chosen are compared, never copied.
    `route_outcomes_df` has one row per routed task: task_kind, model, success (True,
    False or missing), cost_usd, seconds. `contributor` defaults to this installation's
    id (`contributor_id()`). Uploads are increments: pass only what was not shared yet.
    """
    if not hasattr(history, "to_dict") or not hasattr(history, "columns"):
        raise TypeError("history must be a DataFrame with the columns of osqr_nb.history()")
    missing = HISTORY_COLUMNS - set(history.columns)
    if missing:
        raise ValueError(f"the history frame lacks the column(s) {', '.join(sorted(missing))}; "
                         f"pass the frame osqr_nb.history() returns")
    routes = route_outcomes(route_outcomes_df, model_prefixes) if route_outcomes_df is not None else []
    return check(Payload(contributor or contributor_id(), upload_id or new_id(),
                         tuple(decision_counts(history, categories, model_prefixes)), tuple(routes)))


# --- talking to the server --------------------------------------------------------------------

def _as_payload(payload: Payload | Mapping[str, Any]) -> Payload:
    return check(payload) if isinstance(payload, Payload) else check(validate(dict(payload)))


def _clean_token(token: str) -> str:
    """The token as a header can carry it; a bad one is refused here, where no error can echo it."""
    token = (token or "").strip()
    if not token or not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("the osqr-gpkv token must be one word of printable ASCII characters")
    return token


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason_phrase


def _answer(response: httpx.Response, base_url: str) -> dict[str, Any]:
    """The JSON of a 2xx answer, or the GPKVError that says what went wrong."""
    if response.is_success:
        return response.json()
    where = f"osqr-gpkv at {base_url}"
    if response.status_code == 401:
        raise GPKVAuthError(f"{where} refused the token (401): {_message(response)}; check the token "
                            f"you were given")
    if response.status_code == 429:
        retry = _number(response.headers.get("retry-after"))
        raise GPKVRateLimited(f"{where} is rate limiting this token (429): {_message(response)}", retry)
    raise GPKVRejected(f"{where} answered {response.status_code}: {_message(response)}", response.status_code)


class _Base:
    """What both clients share: the address, the headers, and how to read answers."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {_clean_token(token)}", "Accept": "application/json"}
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, token=<hidden>)"

    def preview(self, payload: Payload | Mapping[str, Any]) -> str:
        """Exactly the JSON `upload` would send, indented for reading."""
        return _as_payload(payload).to_json(indent=2)

    def _unreachable(self, error: httpx.HTTPError) -> GPKVError:
        return GPKVError(f"could not reach osqr-gpkv at {self.base_url}: {type(error).__name__}: {error}")


class GPKVClient(_Base):
    """Upload aggregates to osqr-gpkv and download its global priors."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                  transport=transport)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        return _answer(response, self.base_url)

    def upload(self, payload: Payload | Mapping[str, Any]) -> dict[str, Any]:
        """Send one payload; {"status": "stored" | "duplicate", ...}."""
        body = _as_payload(payload).to_json().encode("utf-8")
        return self._request("POST", "/v1/aggregates", content=body,
                             headers={"Content-Type": "application/json"})

    def priors(self) -> dict[str, Any]:
        """The published (k-anonymous) decision counts and route outcomes."""
        return self._request("GET", "/v1/priors")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GPKVClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGPKVClient(_Base):
    """`GPKVClient` for the event loop: the kernel keeps answering while it talks."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                       transport=transport)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        return _answer(response, self.base_url)

    async def upload(self, payload: Payload | Mapping[str, Any]) -> dict[str, Any]:
        body = _as_payload(payload).to_json().encode("utf-8")
        return await self._request("POST", "/v1/aggregates", content=body,
                                   headers={"Content-Type": "application/json"})

    async def priors(self) -> dict[str, Any]:
        return await self._request("GET", "/v1/priors")

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/healthz")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncGPKVClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["GPKVClient", "AsyncGPKVClient", "GPKVError", "GPKVAuthError", "GPKVRateLimited", "GPKVRejected",
           "PayloadError", "payload_from_history", "decision_counts", "route_outcomes", "contributor_id",
           "shared_name", "shared_model"]

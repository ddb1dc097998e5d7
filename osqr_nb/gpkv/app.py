"""osqr-gpkv, the HTTP service: aggregates in, k-anonymous global priors out.

    POST /v1/aggregates   one payload (see `payload`); 201 stored, 200 duplicate
    GET  /v1/priors       summed counts of the groups >= k contributors reported
    GET  /healthz         liveness and database check; no token needed

Every /v1 request carries `Authorization: Bearer <token>`; tokens come from a
file or `OSQR_GPKV_TOKENS` and are compared in constant time. A token may name
its owner (`alice:<token>`); tokens of one owner are one contributor, and a
token without a name is a contributor of its own. k-anonymity counts these
owners, never the contributor id a payload carries (a client can write any id
it likes). Each token has a token bucket for uploads and one for reads, and each
client address one for failed authentications (429 with Retry-After when empty:
a guessed token is refused unheard once a client has failed too often).
Bodies over the limit are refused before parsing, by Content-Length and by the
bytes actually streamed (413). Errors are JSON: {"error": code, "message": text}.
Nothing of a refused request is stored.

`GPKVServer` runs the app under uvicorn on loopback in a background thread, as
`osqr_nb.wire.WireServer` does, for tests and for a notebook that wants one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..loopback import LoopbackServer
from .payload import MAX_BODY_BYTES, SCHEMA_VERSION, PayloadError, decode
from .store import Store

TOKENS_ENV = "OSQR_GPKV_TOKENS"
MIN_TOKEN_LENGTH = 16
DEFAULT_K = 5


@dataclass(frozen=True)
class Limits:
    """What one token may do; uploads are rarer than reads, so their bucket is smaller."""

    k: int = DEFAULT_K
    max_body_bytes: int = MAX_BODY_BYTES
    uploads_per_minute: float = 30
    reads_per_minute: float = 240
    failed_auth_per_minute: float = 10          # per client address

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_body_bytes < 1 or min(self.uploads_per_minute, self.reads_per_minute,
                                                         self.failed_auth_per_minute) <= 0:
            raise ValueError("k, max_body_bytes and the per-minute rates must all be positive")


class ApiError(Exception):
    """A refusal with its status, a short code and a message that says what to do."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


# --- tokens -----------------------------------------------------------------------------------

def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_tokens(text: str, source: str) -> list[str]:
    """Tokens separated by commas or lines, each `token` or `owner:token`; `#` starts a comment."""
    tokens = [t.strip() for line in text.splitlines() for t in line.split("#", 1)[0].split(",")]
    tokens = [t for t in tokens if t]
    for i, token in enumerate(tokens, 1):
        if len(token.rpartition(":")[2]) < MIN_TOKEN_LENGTH:   # never show the token itself, only where it is
            raise ValueError(f"token {i} of {source} is shorter than {MIN_TOKEN_LENGTH} characters; "
                             f"make one with `python -m osqr_nb.gpkv --new-token`")
    return tokens


def load_tokens(token_file: str | os.PathLike | None = None,
                environ: Mapping[str, str] | None = None) -> list[str]:
    """Tokens from the file and from OSQR_GPKV_TOKENS together."""
    environ = os.environ if environ is None else environ
    tokens = parse_tokens(environ.get(TOKENS_ENV, ""), TOKENS_ENV)
    if token_file is not None:
        tokens += parse_tokens(Path(token_file).read_text(encoding="utf-8"), "the token file")
    return tokens


def owner_id(owner: str) -> str:
    """What the store keeps of an owner: a digest, so the database names no one."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


class Tokens:
    """Known tokens, kept only as digests and checked without early exit (constant time), with their owners."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.digests: list[bytes] = []
        self.owners: list[str] = []
        for entry in tokens:
            owner, _, token = entry.rpartition(":")
            self.digests.append(_digest(token))
            self.owners.append(owner_id(f"owner:{owner}" if owner else f"token:{_digest(token).hex()}"))
        if not self.digests:
            raise ValueError(f"osqr-gpkv needs at least one token: pass --token-file or set {TOKENS_ENV}")

    def identify(self, presented: str) -> int | None:
        """The index of the presented token, or None; every known token is compared."""
        digest, found = _digest(presented), None
        for index, known in enumerate(self.digests):
            if hmac.compare_digest(digest, known):
                found = index
        return found


def bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "unauthorized", "send a token as `Authorization: Bearer <token>`",
                       {"WWW-Authenticate": "Bearer"})
    return value.strip()


# --- rate limits ------------------------------------------------------------------------------

@dataclass
class TokenBucket:
    """`per_minute` requests a minute on average, in bursts of up to `per_minute`."""

    per_minute: float
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.level, self.updated = self.per_minute, self.clock()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = self.clock()
        self.level = min(self.per_minute, self.level + (now - self.updated) * self.per_minute / 60)
        self.updated = now
        if self.level >= 1:
            self.level -= 1
            return 0.0
        return (1 - self.level) * 60 / self.per_minute


class RateLimiter:
    """One bucket per (token, kind of request); the event loop is its only caller."""

    MAX_BUCKETS = 100_000        # failed-auth buckets kept at most (one per client address)

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.rates = {"upload": limits.uploads_per_minute, "read": limits.reads_per_minute,
                      "failed_auth": limits.failed_auth_per_minute}
        self.clock = clock
        self.buckets: dict[tuple[Any, str], TokenBucket] = {}

    def _bucket(self, who: Any, kind: str) -> TokenBucket:
        if len(self.buckets) >= self.MAX_BUCKETS:
            self.buckets.clear()             # a flood of addresses resets the memory, never grows it
        return self.buckets.setdefault((who, kind), TokenBucket(self.rates[kind], self.clock))

    def check(self, who: Any, kind: str) -> None:
        wait = self._bucket(who, kind).take()
        if wait:
            seconds = max(1, math.ceil(wait))
            whom = "this client" if kind == "failed_auth" else "this token"
            what = "failed authentications" if kind == "failed_auth" else f"{kind} requests"
            raise ApiError(429, "rate_limited", f"too many {what} for {whom}; retry in {seconds} s",
                           {"Retry-After": str(seconds)})

    def refuse_if_locked(self, address: str) -> None:
        """429 before a token is even compared, while this address has no failures left."""
        bucket = self._bucket(address, "failed_auth")
        level = min(bucket.per_minute, bucket.level + (self.clock() - bucket.updated) * bucket.per_minute / 60)
        if level < 1:
            seconds = max(1, math.ceil((1 - level) * 60 / bucket.per_minute))
            raise ApiError(429, "rate_limited", f"too many failed authentications for this client; "
                           f"retry in {seconds} s", {"Retry-After": str(seconds)})


# --- the application --------------------------------------------------------------------------

async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be too large: declared or streamed."""
    too_large = ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes; "
                         f"send fewer rows per upload")
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise ApiError(400, "bad_request", "Content-Length is not a number")
    if declared is not None and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _json_type(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the payload as application/json")


class Service:
    """The endpoints over one store, with the token check and the limits around them."""

    def __init__(self, store: Store, tokens: Tokens, limits: Limits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.tokens, self.limits = store, tokens, limits
        self.rate = RateLimiter(limits, clock)

    def admit(self, request: Request, kind: str) -> str:
        """The owner of the request's token (its k-anonymity identity), after the limits."""
        address = request.client.host if request.client else "unknown"
        self.rate.refuse_if_locked(address)
        try:
            who = self.tokens.identify(bearer(request))
            if who is None:
                raise ApiError(401, "unauthorized", "the token was refused", {"WWW-Authenticate": "Bearer"})
        except ApiError:
            self.rate.check(address, "failed_auth")
            raise
        self.rate.check(who, kind)
        return self.tokens.owners[who]

    async def aggregates(self, request: Request) -> Response:
        owner = self.admit(request, "upload")
        _json_type(request)
        try:
            payload = decode(await read_limited(request, self.limits.max_body_bytes))
        except PayloadError as error:
            raise ApiError(error.status, "payload_invalid" if error.status == 422 else "bad_request",
                           str(error)) from None
        outcome = await run_in_threadpool(self.store.add, payload, owner)
        if outcome == "conflict":
            raise ApiError(409, "upload_id_taken", "this upload_id belongs to another contributor; "
                           "make a new one for every upload")
        return JSONResponse({"status": outcome, "upload_id": payload.upload_id,
                             "decisions": len(payload.decisions), "routes": len(payload.routes)},
                            status_code=201 if outcome == "stored" else 200)

    async def priors(self, request: Request) -> Response:
        self.admit(request, "read")
        return JSONResponse(await run_in_threadpool(self.store.priors, self.limits.k))

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self.store.ping)
        except Exception:
            return _error(503, "unavailable", "the database does not answer")
        return JSONResponse({"status": "ok", "schema": SCHEMA_VERSION})


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=dict(headers or {}))


def _handlers() -> dict[Any, Callable]:
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return _error(error.status, error.code, error.message, error.headers)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error(error.status_code, code, f"{request.method} {request.url.path}: {error.detail}",
                      error.headers)

    async def server_error(request: Request, error: Exception) -> Response:
        return _error(500, "internal_error", "the server failed; nothing of this request was stored")

    return {ApiError: api_error, HTTPException: http_error, Exception: server_error}


def create_app(store: Store | str, tokens: Iterable[str], limits: Limits | None = None,
               clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The osqr-gpkv application over a store (or a database URL; tables are created)."""
    store = Store(store) if isinstance(store, str) else store
    service = Service(store, Tokens(tokens), limits or Limits(), clock)
    app = Starlette(routes=[
        Route("/v1/aggregates", service.aggregates, methods=["POST"]),
        Route("/v1/priors", service.priors, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
    ], exception_handlers=_handlers())
    app.state.service = service
    return app


# --- running it in a thread -------------------------------------------------------------------

class GPKVServer(LoopbackServer):
    """osqr-gpkv under uvicorn on 127.0.0.1 in a background thread (tests, notebooks)."""

    name = "osqr-gpkv"

    @property
    def store(self) -> Store:
        return self.app.state.service.store

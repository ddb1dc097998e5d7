"""osqr-gpkv: the real service on loopback (uvicorn in a thread, SQLite in a tmp dir),
driven by the client and by raw httpx."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest

from osqr_nb.gpkv.app import GPKVServer, Limits, TokenBucket, create_app, load_tokens
from osqr_nb.gpkv.client import (TASK_KINDS, AsyncGPKVClient, GPKVAuthError, GPKVClient, GPKVRateLimited,
                                 GPKVRejected, contributor_id, payload_from_history, shared_model)
from osqr_nb.gpkv.payload import (MAX_BODY_BYTES, MAX_DECISION_ROWS, Payload, PayloadError, bin_of, new_id,
                                  validate)

GROUP = {"category": "auth", "task_kind": "code", "model": "claude-sonnet", "bin": 7}
ROUTE = {"task_kind": "code", "model": "claude-sonnet", "successes": 2, "failures": 1, "n": 3,
         "cost_usd_sum": 0.5, "seconds_sum": 30.0}
NOTHING = {"contributions": 0, "decision_counts": 0, "route_outcomes": 0}


def make_token() -> str:
    return secrets.token_urlsafe(24)


def body(contributor: str | None = None, upload_id: str | None = None, accepted: int = 3,
         overridden: int = 1, **changes) -> dict:
    payload = {"schema": 1, "contributor": contributor or new_id(), "upload_id": upload_id or new_id(),
               "decisions": [{**GROUP, "accepted": accepted, "overridden": overridden}], "routes": [dict(ROUTE)]}
    payload.update(changes)
    return payload


HTTP = httpx.Client(timeout=10)    # one client for raw requests: making one costs more than a request


@dataclass
class Running:
    server: GPKVServer
    token: str
    other_token: str
    more_tokens: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.server.base_url

    def post(self, payload, token: str | None = None, **kwargs) -> httpx.Response:
        content = json.dumps(payload) if isinstance(payload, (dict, list)) else payload
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        if token is not False:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return HTTP.post(f"{self.url}/v1/aggregates", content=content, headers=headers, **kwargs)

    def priors(self) -> dict:
        with GPKVClient(self.url, self.token) as client:
            return client.priors()

    def totals(self) -> dict:
        return self.server.store.totals()


@pytest.fixture
def serve(tmp_path):
    started: list[GPKVServer] = []

    def start(extra_tokens: tuple[str, ...] = (), **limits) -> Running:
        tokens = [make_token(), make_token()]
        app = create_app(f"sqlite:///{tmp_path / f'gpkv{len(started)}.db'}", tokens + list(extra_tokens),
                         Limits(**{"uploads_per_minute": 1000, "reads_per_minute": 1000, **limits}))
        started.append(GPKVServer(app).start())
        return Running(started[-1], *tokens, tuple(extra_tokens))

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def service(serve) -> Running:
    return serve(k=1)


# --- auth -------------------------------------------------------------------------------------

def test_health_needs_no_token(service):
    answer = HTTP.get(f"{service.url}/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok", "schema": 1}


def test_no_token_or_a_bad_token_is_refused_and_nothing_is_stored(service):
    for token in (False, make_token()):
        answer = service.post(body(), token=token)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == "unauthorized"
    assert HTTP.get(f"{service.url}/v1/priors").status_code == 401
    assert HTTP.get(f"{service.url}/v1/priors", headers={"Authorization": "Basic abc"}).status_code == 401
    assert service.totals() == NOTHING
    assert service.post(body()).status_code == 201
    assert service.post(body(), token=service.other_token).status_code == 201


def test_client_says_the_token_was_refused_without_showing_it(service):
    wrong = make_token()
    client = GPKVClient(service.url, wrong)
    with pytest.raises(GPKVAuthError, match="refused the token") as error:
        client.upload(body())
    with pytest.raises(GPKVAuthError):
        client.priors()
    assert wrong not in str(error.value) and wrong not in repr(client)
    with pytest.raises(ValueError, match="one word") as bad:
        GPKVClient(service.url, "two words\nhere-and-more")
    assert "here-and-more" not in str(bad.value)
    assert service.totals() == NOTHING


# --- refused payloads -------------------------------------------------------------------------

def _with_row(**changes) -> dict:
    return body(decisions=[{**GROUP, "accepted": 1, "overridden": 0, **changes}])


def _without(key: str) -> dict:
    payload = body()
    del payload["decisions"][0][key]
    return payload


INVALID = {
    "unexpected top field": (body(repo="acme/app"), 422, "unexpected field(s) 'repo'"),
    "unexpected row field": (_with_row(file="src/auth.py"), 422, "decisions[0] has unexpected field(s) 'file'"),
    "unexpected route field": (body(routes=[{**ROUTE, "task_id": "t1"}]), 422, "routes[0] has unexpected"),
    "missing field": (_without("overridden"), 422, "lacks the field(s) overridden"),
    "negative count": (_with_row(accepted=-1), 422, "decisions[0].accepted"),
    "float count": (_with_row(accepted=1.5), 422, "decisions[0].accepted"),
    "bool count": (_with_row(accepted=True), 422, "decisions[0].accepted"),
    "string count": (_with_row(accepted="3"), 422, "decisions[0].accepted"),
    "unknown bin": (_with_row(bin=10), 422, "confidence bin"),
    "fractional bin": (_with_row(bin=0.7), 422, "confidence bin"),
    "category with spaces": (_with_row(category="Auth Module"), 422, "decisions[0].category must match"),
    "category with newline": (_with_row(category="auth\n"), 422, "decisions[0].category must match"),
    "long category": (_with_row(category="a" * 65), 422, "decisions[0].category"),
    "model with a path": (_with_row(model="acme/internal-model"), 422, "decisions[0].model"),
    "category outside the vocabulary": (_with_row(category="acme-corp.layoffs-q3-plan"), 422,
                                        "decisions[0].category 'acme-corp.layoffs-q3-plan' is not in the vocab"),
    "task kind outside the vocabulary": (_with_row(task_kind="acme_billing"), 422, "decisions[0].task_kind"),
    "fine-tune id": (_with_row(model="ft:gpt-4o-mini:acme-corp:billing:abc123"), 422,
                     "is not a public model family"),
    "model family with a client's name": (_with_row(model="claude-acmecorp"), 422, "is not a public model"),
    "route model outside the patterns": (body(routes=[{**ROUTE, "model": "acme-llm-7b"}]), 422, "routes[0].model"),
    "contributor not a uuid": (body(contributor="alice"), 422, "contributor must be a random UUID"),
    "contributor uuid1": (body(contributor=str(uuid.uuid1())), 422, "contributor must be a random UUID"),
    "upload id uppercase": (body(upload_id=new_id().upper()), 422, "upload_id"),
    "unknown schema": (body(schema=2), 422, "schema 2 is not supported"),
    "empty group": (_with_row(accepted=0, overridden=0), 422, "counts no decision"),
    "repeated group": (body(decisions=[{**GROUP, "accepted": 1, "overridden": 0}] * 2), 422, "repeats the group"),
    "too many rows": (body(decisions=[{**GROUP, "bin": i % 10, "category": f"c{i}", "accepted": 1,
                                       "overridden": 0} for i in range(MAX_DECISION_ROWS + 1)]), 422, "limit"),
    "nothing": (body(decisions=[], routes=[]), 422, "nothing to upload"),
    "outcomes over n": (body(routes=[{**ROUTE, "successes": 3}]), 422, "successes + failures <= n"),
    "negative cost": (body(routes=[{**ROUTE, "cost_usd_sum": -1}]), 422, "cost_usd_sum"),
    "rows not a list": (body(decisions={"0": GROUP}), 422, "decisions must be a JSON list"),
    "not an object": ([1, 2], 422, "the payload must be a JSON object"),
    "NaN": (json.dumps(body(routes=[{**ROUTE, "seconds_sum": float("nan")}])), 400, "NaN"),
    "repeated key": ('{"schema": 1, "schema": 1}', 400, "repeats the key(s) 'schema'"),
    "not JSON": ("schema=1", 400, "not valid JSON"),
    "not UTF-8": (b"\xff\xfe{}", 400, "not UTF-8"),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the many refused payloads: none of them may store anything."""
    token = make_token()
    app = create_app(f"sqlite:///{tmp_path_factory.mktemp('gpkv') / 'gpkv.db'}", [token],
                     Limits(uploads_per_minute=1000))
    with GPKVServer(app) as server:
        yield Running(server, token, token)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_payload_is_refused_with_its_reason_and_nothing_is_stored(shared, name):
    payload, status, reason = INVALID[name]
    answer = shared.post(payload)
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["message"]
    assert shared.totals() == NOTHING


def test_wrong_content_type_is_refused(shared):
    answer = shared.post(body(), headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and answer.json()["error"] == "unsupported_media_type"
    assert shared.totals() == NOTHING


def test_unknown_path_is_a_json_404(shared):
    answer = HTTP.get(f"{shared.url}/v1/nope", headers={"Authorization": f"Bearer {shared.token}"})
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_too_large_body_is_refused_by_length_and_by_stream(shared):
    padding = " " * (MAX_BODY_BYTES + 1)
    declared = shared.post(json.dumps(body()) + padding)
    assert declared.status_code == 413 and "larger than" in declared.json()["message"]

    def chunks():
        yield json.dumps(body()).encode()
        for _ in range(5):
            yield b" " * 65536

    streamed = shared.post(chunks())      # chunked: no Content-Length to trust
    assert streamed.status_code == 413
    assert shared.totals() == NOTHING


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(shared):
    head = (f"POST /v1/aggregates HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {shared.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", shared.server.port), timeout=5) as sock:
        sock.sendall(head.encode())          # no body follows: the answer must not wait for one
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_client_checks_a_payload_before_sending_it(service):
    with GPKVClient(service.url, service.token) as client:
        with pytest.raises(PayloadError, match="unexpected field"):
            client.upload(body(repo="acme/app"))
    assert service.totals() == NOTHING


# --- limits, duplicates, k-anonymity ----------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after(serve):
    running = serve(k=1, uploads_per_minute=2)
    assert [running.post(body()).status_code for _ in range(3)] == [201, 201, 429]
    limited = running.post(body())
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    with GPKVClient(running.url, running.token) as client:
        with pytest.raises(GPKVRateLimited) as error:
            client.upload(body())
        assert error.value.retry_after >= 1
        assert client.priors()["decisions"]        # reads have their own bucket
    assert running.post(body(), token=running.other_token).status_code == 201   # and each token its own
    assert running.totals()["contributions"] == 3


def test_token_bucket_refills_over_time():
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0, 0]
    assert bucket.take() == pytest.approx(30)
    now[0] += 30
    assert bucket.take() == 0


def test_repeated_upload_id_is_ignored(service):
    payload = body(accepted=3, overridden=1)
    assert service.post(payload).json()["status"] == "stored"
    again = service.post(payload)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    with GPKVClient(service.url, service.token) as client:
        assert client.upload(payload)["status"] == "duplicate"
    [group] = service.priors()["decisions"]
    assert (group["accepted"], group["overridden"], group["contributors"]) == (3, 1, 1)
    again_with_another_id = service.post({**payload, "contributor": new_id()})    # the same owner
    assert again_with_another_id.json()["status"] == "duplicate"
    taken = service.post(body(upload_id=payload["upload_id"]), token=service.other_token)   # another owner
    assert taken.status_code == 409
    assert service.totals()["contributions"] == 1


def test_a_group_is_published_only_when_k_token_owners_reported_it(serve):
    owners = tuple(make_token() for _ in range(3))
    running = serve(k=5, extra_tokens=owners)
    tokens = [running.token, running.other_token, *owners]          # five owners
    for _ in range(6):      # one owner uploading many times is still one contributor
        assert running.post(body(accepted=1, overridden=0), token=tokens[0]).status_code == 201
    for i, token in enumerate(tokens[1:4]):                     # with the first: 4 owners
        assert running.post(body(accepted=i + 1, overridden=1), token=token).status_code == 201
    rare = {**GROUP, "category": "security", "accepted": 1, "overridden": 0}
    assert running.post(body(decisions=[rare], routes=[])).status_code == 201
    priors = running.priors()
    assert priors["k"] == 5 and priors["decisions"] == [] and priors["routes"] == []

    assert running.post(body(accepted=10, overridden=2), token=tokens[4]).status_code == 201   # the 5th owner
    priors = running.priors()
    [group] = priors["decisions"]                                # the rare group stays hidden
    assert group == {**GROUP, "accepted": 6 + 6 + 10, "overridden": 0 + 3 + 2, "contributors": 5,
                     "sum_a2_over_n": pytest.approx(6 + 1 / 2 + 4 / 3 + 9 / 4 + 100 / 12),
                     "sum_n2": pytest.approx(36 + 4 + 9 + 16 + 144)}
    assert priors["routes"] == [{**ROUTE, "successes": 20, "failures": 10, "n": 30, "cost_usd_sum": 5.0,
                                 "seconds_sum": 300.0, "contributors": 5}]
    assert len(priors["bins"]) == 10 and priors["bins"][7] == [0.7, 0.8]


def test_invented_contributor_ids_do_not_make_a_group_k_anonymous(serve):
    """The issue's attack: with k=3, a victim's counts must not be published by one token posing as two."""
    running = serve(k=3)
    victim = {**GROUP, "category": "security", "accepted": 7, "overridden": 4}
    assert running.post(body(decisions=[victim], routes=[]), token=running.token).status_code == 201
    for _ in range(2):                               # the attacker: one token, two made-up contributor ids
        fake = {**victim, "accepted": 1, "overridden": 0}
        assert running.post(body(contributor=new_id(), decisions=[fake], routes=[]),
                            token=running.other_token).status_code == 201
    assert running.priors()["decisions"] == []       # two owners, not three: nothing to subtract from


def test_tokens_of_one_owner_count_once(serve):
    first, second = make_token(), make_token()
    running = serve(k=2, extra_tokens=(f"mallory:{first}", f"mallory:{second}"))
    for token in (first, second):
        assert running.post(body(), token=token).status_code == 201
    assert running.priors()["decisions"] == []
    assert running.post(body(), token=running.token).status_code == 201          # a second owner
    assert running.priors()["decisions"][0]["contributors"] == 2


def test_failed_authentication_is_throttled_per_client(serve):
    running = serve(k=1, failed_auth_per_minute=3)
    answers = [running.post(body(), token=make_token()).status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]
    locked = running.post(body(), token=running.token)      # even a right guess is not heard now
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert "failed authentications" in locked.json()["message"]
    assert HTTP.get(f"{running.url}/v1/priors").status_code == 429
    assert running.totals() == NOTHING


def test_failed_auth_bucket_refills():
    from osqr_nb.gpkv.app import ApiError, RateLimiter

    now = [0.0]
    limiter = RateLimiter(Limits(failed_auth_per_minute=2), clock=lambda: now[0])
    for _ in range(2):
        limiter.refuse_if_locked("10.0.0.1")
        limiter.check("10.0.0.1", "failed_auth")
    with pytest.raises(ApiError, match="failed authentications"):
        limiter.refuse_if_locked("10.0.0.1")
    limiter.refuse_if_locked("10.0.0.2")             # another address is not affected
    now[0] += 30
    limiter.refuse_if_locked("10.0.0.1")


# --- the client -------------------------------------------------------------------------------

SECRETS = ["run-7f3a9c", "task-auth-42", "Use JWT in billing/acme_tokens.py", "Keep sessions in Redis",
           "acme_billing"]


def history_frame() -> pd.DataFrame:
    rows = [
        # run_id, task_id, task_kind, category, confidence, proposed, chosen, decided_by
        (SECRETS[0], SECRETS[1], "code", "auth", 0.72, SECRETS[2], SECRETS[2], "human"),
        (SECRETS[0], SECRETS[1], "code", "auth", 0.75, SECRETS[2], SECRETS[3], "human"),
        (SECRETS[0], "t2", "code", "auth", 0.79, "A", "A", "code"),
        (SECRETS[0], "t3", "docs", "Auth", 1.0, "A", "B", "human"),
        (SECRETS[0], "t4", "docs", SECRETS[4], 0.05, "A", "A", "human"),
        (SECRETS[0], "t5", "code", "auth", 0.72, "A", "A", "auto"),       # not a person: not counted
        (SECRETS[0], "t6", "code", "auth", 0.72, "A", "A", "log"),
        (SECRETS[0], "t7", "code", "merge", None, None, "manual text", "human"),   # no proposal
    ]
    frame = pd.DataFrame(rows, columns=["run_id", "task_id", "task_kind", "category", "confidence",
                                        "proposed", "chosen", "decided_by"])
    frame["created_at"] = frame["resolved_at"] = pd.Timestamp("2026-11-25", tz="UTC")
    return frame


def test_payload_from_history_counts_and_sends_no_ids_or_text():
    outcomes = pd.DataFrame({"task_kind": ["code", "code", "docs"], "model": ["claude-sonnet"] * 2 + [None],
                             "success": [True, False, None], "cost_usd": [0.25, float("nan"), 0.1],
                             "seconds": [10.0, 20.0, 5.0], "task_id": [SECRETS[1]] * 3})
    contributor = new_id()
    payload = payload_from_history(history_frame(), outcomes, contributor=contributor)
    sent = payload.to_json() + GPKVClient("http://127.0.0.1:9", make_token()).preview(payload)
    for secret in SECRETS:
        assert secret not in sent and secret.lower() not in sent.lower()
    assert json.loads(payload.to_json())["contributor"] == contributor
    decisions = {(d.category, d.task_kind, d.model, d.bin): (d.accepted, d.overridden) for d in payload.decisions}
    assert decisions == {("auth", "code", "unknown", 7): (2, 1), ("auth", "docs", "unknown", 9): (0, 1),
                         ("other", "docs", "unknown", 0): (1, 0)}
    routes = {(r.task_kind, r.model): (r.successes, r.failures, r.n, r.cost_usd_sum, r.seconds_sum)
              for r in payload.routes}
    assert routes == {("code", "claude-sonnet"): (1, 1, 2, 0.25, 30.0), ("docs", "unknown"): (0, 0, 1, 0.1, 5.0)}


def test_payload_from_history_refuses_what_it_cannot_count():
    with pytest.raises(ValueError, match="lacks the column"):
        payload_from_history(pd.DataFrame({"run_id": ["r1"]}), contributor=new_id())
    with pytest.raises(PayloadError, match="nothing to upload"):
        payload_from_history(history_frame().iloc[0:0], contributor=new_id())


def test_model_names_are_shared_as_public_families_only():
    assert shared_model("claude-sonnet") == "claude-sonnet"
    assert shared_model("openrouter/anthropic/Claude-Opus") == "claude-opus"
    assert shared_model("ft:gpt-4o-mini:acme-corp:billing:abc123") == "ft:gpt-4o-mini"
    assert shared_model("acme-internal-llm") == "other"
    assert shared_model(None) == "unknown"


def test_task_kinds_mirror_the_planner():
    from osqr_nb.plan.task import TaskKind

    assert TASK_KINDS == {kind.value for kind in TaskKind}


def test_bins_and_validation_in_code():
    assert [bin_of(c) for c in (0, 0.0999, 0.1, 0.7, 0.8999, 0.9, 1.0)] == [0, 0, 1, 7, 8, 9, 9]
    with pytest.raises(PayloadError):
        bin_of(1.01)
    assert isinstance(validate(body()), Payload)


def test_preview_is_exactly_what_upload_sends():
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, json={"status": "stored"})

    token = make_token()
    client = GPKVClient("http://gpkv.invalid", token, transport=httpx.MockTransport(handler))
    payload = payload_from_history(history_frame(), contributor=new_id())
    preview = client.preview(payload)
    assert client.upload(payload) == {"status": "stored"}
    assert json.loads(preview) == json.loads(sent[0].content) == payload.to_dict()
    assert sent[0].url.path == "/v1/aggregates" and token not in preview


def test_priors_round_trip_through_the_client(service):
    payload = payload_from_history(history_frame(), contributor=new_id())
    with GPKVClient(service.url, service.token) as client:
        answer = client.upload(payload)
        assert answer["status"] == "stored" and answer["decisions"] == 3
        priors = client.priors()
        assert client.health()["status"] == "ok"
    published = {(d["category"], d["task_kind"], d["model"], d["bin"]): (d["accepted"], d["overridden"])
                 for d in priors["decisions"]}
    assert published == {d.group: (d.accepted, d.overridden) for d in payload.decisions}


def test_async_client_uploads_and_reads(service):
    async def go() -> dict:
        async with AsyncGPKVClient(service.url, service.token) as client:
            await client.upload(body())
            return await client.priors()

    assert asyncio.run(go())["decisions"][0]["accepted"] == 3


def test_client_reports_a_refusal_with_the_servers_reason(service):
    payload = body()
    with GPKVClient(service.url, service.token) as client:
        client.upload(payload)
    with GPKVClient(service.url, service.other_token) as client:
        with pytest.raises(GPKVRejected, match="409: this upload_id belongs to another contributor") as error:
            client.upload({**payload, "contributor": new_id()})
    assert error.value.status == 409


def test_contributor_id_is_random_and_kept(tmp_path):
    path = tmp_path / "osqr" / "contributor"
    first = contributor_id(path)
    assert uuid.UUID(first).version == 4 and contributor_id(path) == first
    assert contributor_id(tmp_path / "another") != first


# --- starting it ------------------------------------------------------------------------------

def test_tokens_come_from_a_file_and_the_environment(tmp_path):
    file_token, env_token = make_token(), make_token()
    path = tmp_path / "tokens"
    path.write_text(f"# issued 2026-11\n{file_token}\n\n")
    assert load_tokens(path, {"OSQR_GPKV_TOKENS": f" {env_token} ,"}) == [env_token, file_token]
    path.write_text(f"alice:{file_token}\n")
    assert load_tokens(path, {}) == [f"alice:{file_token}"]
    path.write_text("short-one\n")
    with pytest.raises(ValueError, match="token 1 of the token file is shorter") as error:
        load_tokens(path, {})
    assert "short-one" not in str(error.value)
    with pytest.raises(ValueError, match="at least one token"):
        create_app("sqlite://", [])


def test_command_line_refuses_to_start_without_tokens(monkeypatch, capsys, tmp_path):
    from osqr_nb.gpkv.__main__ import main

    monkeypatch.delenv("OSQR_GPKV_TOKENS", raising=False)
    assert main(["--db", f"sqlite:///{tmp_path / 'gpkv.db'}"]) == 2
    assert "at least one token" in capsys.readouterr().err
    assert main(["--new-token"]) == 0
    assert len(capsys.readouterr().out.strip()) >= 32


def test_gpkv_imports_no_kernel_or_widget_code():
    code = ("import sys, osqr_nb.gpkv, osqr_nb.gpkv.app, osqr_nb.gpkv.client, osqr_nb.gpkv.store, "
            "osqr_nb.gpkv.__main__\n"
            "print([m for m in ('IPython', 'ipywidgets', 'ipykernel', 'osqr_nb.engine', 'osqr_nb.ui', "
            "'osqr_nb.magics', 'pandas') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

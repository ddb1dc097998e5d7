"""Opt-in sharing: the preview is exactly what is sent, only counts, each decision once."""

import asyncio
import json
import uuid

import pytest

import osqr_nb
from osqr_nb import sharing
from osqr_nb.config import settings
from osqr_nb.gpkv.app import GPKVServer, create_app
from osqr_nb.store.events import open_log

from conftest import run_async, seed_run

TOKEN = "test-token-not-secret-0123456789"


def test_share_sends_only_counts_once_and_the_preview_matches(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sharing, "_demo_runs", lambda log: set())    # as if the seed run had used real models

    run = run_async(seed_run(repo))
    log = open_log(repo)
    history = osqr_nb.history(repo)
    shown = sharing.preview(history, log)
    sent = json.loads(shown)
    assert sent["decisions"] and set(sent) == {"schema", "contributor", "upload_id", "decisions", "routes"}
    for secret in (run.id, "DB Sessions", "auth-module", "JWT"):
        assert secret not in shown
    with pytest.raises(ValueError, match="no GPKV service configured"):
        asyncio.run(sharing.share(history, log))

    with GPKVServer(create_app(f"sqlite:///{tmp_path / 'gpkv.db'}", [TOKEN])) as server:
        config = settings()
        config.gpkv_url, config.gpkv_token = server.base_url, TOKEN
        try:
            answer = asyncio.run(sharing.share(history, log))
            assert answer["status"] == "stored"
            assert sharing.preview(osqr_nb.history(repo), log).startswith("nothing new to share")
            assert asyncio.run(sharing.pull_priors()) == 0          # one contributor: k-anonymity hides it
            from osqr_nb.learning import PKV
            from osqr_nb.learning.wiring import cached_priors
            assert cached_priors(PKV())["k"] >= 2
            assert asyncio.run(sharing.share(history, log))["status"].startswith("nothing new")
        finally:
            config.gpkv_url, config.gpkv_token = "", ""


def test_demo_runs_are_never_shared(repo):
    run_async(seed_run(repo))                                   # the scripted offline model
    assert sharing.preview(osqr_nb.history(repo), open_log(repo)).startswith("nothing new to share")


def publish(server_url: str, tokens: list[str]) -> None:
    """Five owners (one token each) upload synthetic histories: past k-anonymity."""
    from osqr_nb.gpkv.client import GPKVClient, payload_from_history
    from osqr_nb.learning import synthetic_history

    for seed, token in enumerate(tokens):
        with GPKVClient(server_url, token) as client:
            client.upload(payload_from_history(synthetic_history(n=600, seed=seed), contributor=str(uuid.uuid4())))


def test_a_new_user_pulls_the_global_priors_without_any_run(tmp_path):
    from osqr_nb.learning import PKV, recommend_thresholds
    from osqr_nb.learning.wiring import cached_priors

    tokens = [f"owner-{i}-token-not-secret-0123456789" for i in range(5)]
    with GPKVServer(create_app(f"sqlite:///{tmp_path / 'gpkv.db'}", tokens)) as server:
        publish(server.base_url, tokens)
        config = settings()
        config.gpkv_url, config.gpkv_token = server.base_url, tokens[0]
        try:
            assert asyncio.run(sharing.pull_priors()) > 0         # %osqr share --pull: no runs needed
        finally:
            config.gpkv_url, config.gpkv_token = "", ""
    assert PKV().history().empty                               # a new user: no evidence of their own
    rows = cached_priors(PKV())["decisions"]
    assert rows and {"contributors", "sum_a2_over_n", "sum_n2"} <= set(rows[0])
    policy = settings().policy(2)
    assert policy.by_category, "the global priors should give learned thresholds from day one"
    from osqr_nb.learning import priors_from
    frame = recommend_thresholds(PKV().history(), prior=priors_from(cached_priors(PKV())))
    assert (frame["based_on"] == "prior").all()
    assert policy.by_category["docs"].ask_below < 0.7                  # freer than static where all agree


def test_a_new_users_first_run_fetches_the_priors_when_a_service_is_configured(tmp_path):
    from osqr_nb.learning import PKV
    from osqr_nb.learning.wiring import priors_path, wait_for_priors

    tokens = [f"owner-{i}-token-not-secret-0123456789" for i in range(5)]
    with GPKVServer(create_app(f"sqlite:///{tmp_path / 'gpkv.db'}", tokens)) as server:
        publish(server.base_url, tokens)
        assert not priors_path(PKV()).exists()
        assert not settings().policy(2).by_category                   # no service: nothing learned
        config = settings()
        config.gpkv_token = tokens[0]
        config.gpkv_url = server.base_url                             # starts the fetch, in the background
        try:
            assert wait_for_priors(PKV(), 30)
            policy = config.policy(2)                                 # what api.start does for a run
        finally:
            config.gpkv_url, config.gpkv_token = "", ""
    assert priors_path(PKV()).exists() and policy.by_category
    assert "global priors" in policy.reasons["docs"]


def test_a_share_record_in_the_log_is_not_a_run_to_resume(repo):
    from osqr_nb.store.events import Event

    run = run_async(seed_run(repo))
    open_log(repo).append(Event(sharing.SHARE_RUN, "shared", None, {"until": 0.0}))
    with pytest.raises(ValueError, match="every run in .* has finished"):
        run_async(_resume(repo))
    with pytest.raises(ValueError, match=f"no run 'share'.*{run.id}"):
        run_async(_resume(repo, "share"))


async def _resume(repo, run_id=None):
    return osqr_nb.resume(run_id, repo=repo)

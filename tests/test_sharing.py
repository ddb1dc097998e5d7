"""Opt-in sharing: the preview is exactly what is sent, only counts, each decision once."""

import asyncio
import json

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


def test_a_new_user_starts_from_the_global_priors(tmp_path):
    import uuid

    from osqr_nb.gpkv.client import GPKVClient, payload_from_history
    from osqr_nb.learning import PKV, synthetic_history

    with GPKVServer(create_app(f"sqlite:///{tmp_path / 'gpkv.db'}", [TOKEN])) as server:
        client = GPKVClient(server.base_url, TOKEN)
        for seed in range(5):                                   # five contributors: past k-anonymity
            history = synthetic_history(n=600, seed=seed)
            client.upload(payload_from_history(history, contributor=str(uuid.uuid4())))
        config = settings()
        config.gpkv_url, config.gpkv_token = server.base_url, TOKEN
        try:
            assert asyncio.run(sharing.pull_priors()) > 0
        finally:
            config.gpkv_url, config.gpkv_token = "", ""
    assert PKV().history().empty                               # a new user: no evidence of their own
    policy = settings().policy(2)
    assert policy.by_category, "the global priors should give learned thresholds from day one"


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

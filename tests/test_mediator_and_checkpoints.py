import asyncio

import networkx as nx
import pytest

from osqr_nb.agents.messages import Mediator
from osqr_nb.autonomy.checkpoints import Checkpoint

from conftest import run_async


def test_mediator_sends_a_finished_task_output_to_each_dependent_only():
    graph = nx.DiGraph([("db", "auth"), ("db", "billing"), ("auth", "docs")])
    mediator = Mediator(graph)
    messages = mediator.route("db", {"files_created": ["db/schema.sql"], "decisions": ["UUID ids"]})
    assert sorted(m.to_task for m in messages) == ["auth", "billing"]
    for message in messages:
        mediator.deliver(message)
    assert mediator.inbox("docs") == []
    text = mediator.inbox("auth")[0].render("DB Schema")
    assert "From DB Schema (db)" in text and "Files created: db/schema.sql" in text
    assert "Decisions: UUID ids" in text


def test_checkpoint_is_awaitable_and_refuses_unknown_answers():
    recorded = []
    checkpoint = Checkpoint("c1", "r", "auth", "JWT or DB sessions?", ["JWT", "DB Sessions"],
                            record=lambda cp, label, by: recorded.append((label, by, cp.answer)))
    assert checkpoint.options == ["JWT", "DB Sessions", "Let me think"]

    async def main():
        waiter = asyncio.ensure_future(_wait(checkpoint))
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="not an option"):
            checkpoint.resolve("Cookies")
        checkpoint.resolve("Let me think")
        assert checkpoint.pending and checkpoint.parked and not waiter.done()
        checkpoint.resolve("DB Sessions", by="human")
        return await waiter

    async def _wait(cp):
        return await cp

    assert run_async(main()) == "DB Sessions"
    assert recorded == [("Let me think", "code", None), ("DB Sessions", "human", "DB Sessions")]
    with pytest.raises(ValueError, match="already answered"):
        checkpoint.resolve("JWT")

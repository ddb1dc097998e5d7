"""A cell body that is a plan runs as written; a request in words is planned."""

import osqr_nb

from conftest import run_async

EXPLICIT = """\
- [db] DB Schema (refactor): Design the schema
- [auth] Auth Module (code) after db~: Build auth on the draft schema
- [docs] API Docs (docs) after auth: Document it
"""


def test_an_explicit_plan_in_the_cell_runs_as_written_with_its_partial_edge(repo):
    async def main():
        run = osqr_nb.start(EXPLICIT, repo=repo, tier=4)
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    assert [t.id for t in run.plan.tasks] == ["db", "auth", "docs"]
    assert run.plan.graph.edges["db", "auth"]["partial"] is True
    assert "explicit" in run.plan.planner


def test_a_broken_explicit_plan_says_which_line(repo):
    import pytest
    with pytest.raises(osqr_nb.PlanError, match="line 2"):
        osqr_nb.start("- [a] A (code)\n- [b] B (code) after ghost\n", repo=repo)
    assert osqr_nb.events(repo).empty

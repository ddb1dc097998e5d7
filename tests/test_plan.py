import pytest

from osqr_nb import Plan, PlanError, Task, TaskKind
from osqr_nb.plan.decompose import OfflinePlanner, split_clauses

from conftest import SEED_REQUEST


def test_offline_planner_gives_the_seed_graph():
    plan = OfflinePlanner().plan(SEED_REQUEST)
    assert [t.title for t in plan.tasks] == ["DB Schema", "Auth Module", "API Docs"]
    assert set(plan.graph.edges) == {("db-schema", "auth-module"), ("auth-module", "api-docs")}
    assert plan["api-docs"].kind is TaskKind.DOCS
    assert plan.critical_path() == ["db-schema", "auth-module", "api-docs"]


def test_offline_planner_reads_list_items_and_orders_code_before_tests():
    plan = OfflinePlanner().plan("- add a login page\n- add a signup page\n- write tests for login")
    assert len(plan) == 3
    tests = next(t for t in plan.tasks if t.kind is TaskKind.TESTS)
    assert set(tests.depends_on) == {"login-page", "signup-page"}
    # the two pages do not depend on each other: they can run in parallel
    assert not plan["login-page"].depends_on and not plan["signup-page"].depends_on


def test_split_clauses_on_commas_semicolons_and_verbs():
    assert split_clauses("Add caching and update docs; then review everything") == [
        "Add caching", "update docs", "review everything"]


@pytest.mark.parametrize("request_text", ["", "   \n  "])
def test_empty_request_is_refused(request_text):
    with pytest.raises(PlanError, match="request is empty"):
        OfflinePlanner().plan(request_text)


def test_cycle_is_refused_with_the_cycle_shown():
    with pytest.raises(PlanError, match="cycle: .*a -> b|cycle: .*b -> a"):
        Plan([Task("a", "A", depends_on=["b"]), Task("b", "B", depends_on=["a"])])


def test_unknown_dependency_is_named():
    with pytest.raises(PlanError, match="'a' depends on 'ghost', which is not in the plan"):
        Plan([Task("a", "A", depends_on=["ghost"])])


def test_duplicate_and_unusable_ids_and_unknown_kinds():
    with pytest.raises(PlanError, match="unique"):
        Plan([Task("a", "A"), Task("a", "B")])
    with pytest.raises(PlanError, match="branch name"):
        Plan([Task("Has Spaces", "A")])
    with pytest.raises(PlanError, match="unknown kind 'poetry'"):
        Task("a", "A", kind="poetry")
    with pytest.raises(PlanError, match="no tasks"):
        Plan([])


def test_plan_round_trips_through_a_dict():
    plan = OfflinePlanner().plan(SEED_REQUEST)
    again = Plan.from_dict(plan.to_dict())
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in plan.tasks]

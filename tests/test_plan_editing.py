"""The Plan's richer tasks (partial, writes, reads, acceptance, estimates) and its editing API."""

import pytest

from osqr_nb import Plan, PlanError, Task, TaskKind


def seed() -> Plan:
    return Plan([Task("db", "DB Schema", "refactor"),
                 Task("auth", "Auth Module", "code", depends_on=["db"]),
                 Task("docs", "API Docs", "docs", depends_on=["auth"])])


def test_old_style_tasks_get_empty_new_fields_and_old_dicts_still_load():
    task = Task("a", "A", TaskKind.CODE, "do it", ["b"])
    assert (task.partial, task.writes, task.reads, task.acceptance, task.estimate_hours) == ([], [], [], [], None)
    old = {"id": "a", "title": "A", "kind": "code", "description": "", "depends_on": []}
    assert Task.from_dict(old) == Task("a", "A")


def test_new_fields_round_trip_and_partial_edges_are_marked():
    plan = Plan([Task("api", "API", writes=["api/*.py"], estimate_hours=2),
                 Task("client", "Client", depends_on=["api"], partial=["api"], reads=["api/spec.yaml"],
                      acceptance=["talks to the API"], estimate_hours=1.5)])
    assert plan.graph.edges["api", "client"]["partial"] is True
    again = Plan.from_dict(plan.to_dict())
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in plan.tasks]
    assert again.graph.edges["api", "client"]["partial"] is True
    assert "api~>client" in repr(again)


def test_partial_must_be_a_dependency_and_all_problems_are_listed():
    with pytest.raises(PlanError) as caught:
        Plan([Task("a", "A", partial=["b"]), Task("b", "B", depends_on=["ghost"], estimate_hours=-1)])
    assert "lists 'b' in partial but not in depends_on" in str(caught.value)
    assert "'ghost', which is not in the plan" in str(caught.value)
    assert "estimate_hours" in str(caught.value)
    assert len(caught.value.problems) == 3


def test_critical_path_is_weighted_by_estimates():
    plan = Plan([Task("a", "A", estimate_hours=1), Task("b", "B", depends_on=["a"], estimate_hours=1),
                 Task("long", "Long", estimate_hours=5)])
    assert plan.critical_path() == ["long"]
    assert plan.critical_path_length() == 5
    unweighted = Plan([Task("a", "A"), Task("b", "B", depends_on=["a"]), Task("long", "Long")])
    assert unweighted.critical_path() == ["a", "b"] and unweighted.critical_path_length() == 2
    # a task without an estimate counts as the mean of the known ones
    mixed = Plan([Task("a", "A", estimate_hours=4), Task("b", "B", depends_on=["a"])])
    assert mixed.critical_path_length() == 8


def test_add_task_and_dependencies():
    plan = seed()
    plan.add_task(Task("tests", "Auth Tests", "tests", depends_on=["auth"]))
    plan.add_dependency("docs", "db", partial=True)
    assert plan["docs"].depends_on == ["auth", "db"] and plan["docs"].partial == ["db"]
    assert plan.graph.edges["db", "docs"]["partial"] is True
    plan.add_dependency("docs", "db")          # again, not partial: the flag is updated
    assert plan["docs"].partial == [] and plan.graph.edges["db", "docs"]["partial"] is False
    plan.remove_dependency("docs", "db")
    assert ("db", "docs") not in plan.graph.edges and plan["docs"].depends_on == ["auth"]
    assert [t.id for t in plan.tasks][:2] == ["db", "auth"]


def test_add_task_refuses_bad_tasks_and_leaves_the_plan_alone():
    plan = seed()
    before = plan.to_dict()
    with pytest.raises(PlanError, match="unique"):
        plan.add_task(Task("db", "Again"))
    with pytest.raises(PlanError, match="'ghost', which is not in the plan"):
        plan.add_task(Task("x", "X", depends_on=["ghost"]))
    assert plan.to_dict() == before


def test_add_dependency_refuses_a_cycle_naming_it():
    plan = seed()
    before = plan.to_dict()
    with pytest.raises(PlanError, match=r"cycle db -> auth -> docs -> db|cycle docs -> db -> auth -> docs") as caught:
        plan.add_dependency("db", "docs")
    assert "unchanged" in str(caught.value)
    assert plan.to_dict() == before and len(plan.graph.edges) == 2
    with pytest.raises(PlanError, match="itself"):
        plan.add_dependency("db", "db")
    with pytest.raises(PlanError, match="no task 'ghost'"):
        plan.add_dependency("db", "ghost")
    with pytest.raises(PlanError, match="does not depend on 'docs'"):
        plan.remove_dependency("db", "docs")


def test_remove_task_refuses_when_needed_unless_cascading():
    plan = seed()
    with pytest.raises(PlanError, match="auth depend on it.*cascade=True"):
        plan.remove_task("db")
    assert len(plan) == 3
    assert plan.remove_task("docs") == ["docs"]
    plan.add_task(Task("extra", "Extra"))
    assert plan.remove_task("db", cascade=True) == ["db", "auth"]
    assert [t.id for t in plan.tasks] == ["extra"]
    with pytest.raises(PlanError, match="empty"):
        plan.remove_task("extra")
    with pytest.raises(PlanError, match="no task 'ghost'"):
        plan.remove_task("ghost")


def test_ordered_ignores_partial_dependencies_when_asked():
    plan = Plan([Task("a", "A"), Task("b", "B", depends_on=["a"], partial=["a"]), Task("c", "C")])
    assert plan.ordered("a", "b") and not plan.ordered("a", "b", count_partial=False)
    assert not plan.ordered("a", "c")


def test_copy_is_independent():
    plan = seed()
    other = plan.copy()
    other.add_dependency("docs", "db")
    assert ("db", "docs") not in plan.graph.edges
